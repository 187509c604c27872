"""What the dirac-vm-* administrator commands share: reading the fleet, checking a CE."""
