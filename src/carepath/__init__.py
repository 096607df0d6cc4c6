"""CarePath: an event-sourced care-pathway workflow engine for Intensive Outpatient Programs."""

__version__ = "0.1.0"
