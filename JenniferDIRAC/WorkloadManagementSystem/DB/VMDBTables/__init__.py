"""VMDB by table group; DB/VMDB.py composes them into the one DIRAC ``VMDB`` class."""
