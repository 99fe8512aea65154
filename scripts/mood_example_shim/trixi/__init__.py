"""No-op stand-in for trixi's logging (see ../README.md); pytorchutils is trixi's own."""
