"""Model architectures (Keras 3): a registry of name -> builder."""
