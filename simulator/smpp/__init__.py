"""Sans-IO SMPP 3.4 core: codec, text, segmentation and the session state machine."""
