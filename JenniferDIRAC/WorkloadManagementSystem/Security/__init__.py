"""What a VM may present: signed VM tokens and the one-time sealed bootstrap of a pilot's secrets."""
