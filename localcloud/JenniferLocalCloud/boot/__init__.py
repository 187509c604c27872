"""Booting LocalCloud VMs: user data run by a cloud-init subset inside a bubblewrap sandbox."""
