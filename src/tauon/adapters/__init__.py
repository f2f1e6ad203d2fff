"""Adapter binaries tauon ships as package data (provenance in README.md beside them)."""
