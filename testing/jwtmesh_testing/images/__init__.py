"""Container images without a registry or Docker (`make images`): layers written with
tarfile, docker-archive tarballs written with json, imported into containerd with `ctr`."""
