"""The guest image of the QEMU lab (root only to build).

``recipe`` (what goes into the image, as data; its hash names the cache), ``sources`` (the
host's apt sources as the build's mirror), ``build`` (one image from Debian packages) and
``rootfs`` (``ensure_rootfs``: the cached image for the current recipe, built once). The files
written into the image are package data in ``guest/``.
"""
