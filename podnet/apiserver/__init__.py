"""A read-only Kubernetes API server over the store (``podnet apiserver``).

Pods that need to know the cluster (the cluster DNS, the ingress controller) list and watch
it through this server with their ServiceAccount token, never through podnet's state
directory: ``resources`` maps Kubernetes paths to kinds, ``auth`` checks tokens, ``rbac``
evaluates Roles and bindings, ``server`` serves lists, objects and watches over HTTPS, and
``endpoints`` publishes the server as the ``kubernetes`` Service's endpoints.
"""
