"""The wire protocol: frames, error codes and identifiers. Pure data, no I/O."""
