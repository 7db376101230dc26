"""Runtimes for exported dynamic models: the export folder format, the split-graph runtime and its sessions."""
