"""The Docker Engine API of every node, as the docker CLI 28 and the docker SDK 7 use it (engine-api.md): state
(containers, images, volumes, networks, programs) and the HTTP routes over the node's /var/run/docker.sock."""
