"""bread's faces: the HTTP services (order edge, pay, gateway) and the Faust web views (bakery, Mypage, order
worker). The `bread` command that runs them is in `ops/`."""
