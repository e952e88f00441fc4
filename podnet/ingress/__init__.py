"""The ingress controller: Ingress rules → an nginx configuration (``plan``, ``nginx``: pure),
and the process in the ingress-nginx pods that keeps nginx serving it (``controller``)."""
