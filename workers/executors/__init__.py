"""Where steps run: this machine, or a cluster behind the same protocol (:mod:`.base`)."""
