"""edgeprov: a self-hosted, wire-compatible device provisioning service and hub for IoT Edge."""

__version__ = "0.1.0"
