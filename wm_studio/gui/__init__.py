"""Everything that draws (Qt, pyqtgraph). It runs the generators of wm_studio.core on worker threads."""
