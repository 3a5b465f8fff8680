"""bread's faces: the HTTP services (order edge, pay, gateway, Faust web views) and the `bread` command."""
