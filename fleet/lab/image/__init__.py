"""The lab guests' cached root filesystem: recipe, sources, build."""
