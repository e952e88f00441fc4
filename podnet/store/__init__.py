"""Revisioned state shared by every podnet process: the Store protocol and its backends."""
