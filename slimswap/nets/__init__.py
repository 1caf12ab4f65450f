"""Neural networks: the identity net (dlib face ResNet port), later the swap generators."""
