"""The ingest pipeline: receive into quarantine, de-identify, verify, store and index."""
