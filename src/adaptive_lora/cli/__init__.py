"""The ``adaptive-lora`` command line."""
