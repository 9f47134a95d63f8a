"""Random rollouts on disk and streaming datasets over them."""
