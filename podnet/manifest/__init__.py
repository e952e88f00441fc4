"""podnet.manifest"""
