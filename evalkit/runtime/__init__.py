"""OpenVINO runtime: reading, checking and compiling models (one place), the translation models and the
verifier."""
