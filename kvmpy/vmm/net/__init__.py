"""Network backends: the host side of a virtio-net link (socket, passt, TAP), see `backends`."""
