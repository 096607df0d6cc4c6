"""Process wiring: settings, logging, the Temporal client and data converter, the worker."""
