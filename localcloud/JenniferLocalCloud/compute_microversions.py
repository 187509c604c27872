"""The Nova 2.1 microversions LocalCloud's compute API speaks (a request without
``OpenStack-API-Version`` gets the minimum, as from Nova)."""

MIN_MICROVERSION = (2, 1)
MAX_MICROVERSION = (2, 96)
