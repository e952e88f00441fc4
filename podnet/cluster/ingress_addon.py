"""The ingress-nginx add-on (``podnet up --ingress``), as its upstream manifests install it:
namespace ``ingress-nginx``, the controller's ServiceAccount and ClusterRole, the default
IngressClass ``nginx`` (controller ``k8s.io/ingress-nginx``), a Deployment
``ingress-nginx-controller`` whose pods run nginx under podnet's controller
(``podnet/ingress``), and a NodePort Service of the same name on ports 80 and 443 (fixed node
ports 30380 and 30443, so a lab's address is predictable)."""
from __future__ import annotations

from podnet.manifest.loader import load_text
from podnet.model import Resource

HTTP_NODE_PORT = 30380
HTTPS_NODE_PORT = 30443

MANIFEST = f"""
apiVersion: v1
kind: Namespace
metadata: {{name: ingress-nginx, labels: {{app.kubernetes.io/name: ingress-nginx}}}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {{name: ingress-nginx, namespace: ingress-nginx}}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: ingress-nginx}}
rules:
- apiGroups: [""]
  resources: [services, endpoints, secrets, pods, namespaces]
  verbs: [list, watch, get]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch, get]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, ingressclasses]
  verbs: [list, watch, get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: ingress-nginx}}
roleRef: {{apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ingress-nginx}}
subjects:
- {{kind: ServiceAccount, name: ingress-nginx, namespace: ingress-nginx}}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: nginx
  labels: {{app.kubernetes.io/name: ingress-nginx}}
  annotations: {{ingressclass.kubernetes.io/is-default-class: "true"}}
spec: {{controller: k8s.io/ingress-nginx}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: ingress-nginx-controller, namespace: ingress-nginx, labels: {{app.kubernetes.io/name: ingress-nginx}}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app.kubernetes.io/name: ingress-nginx, app.kubernetes.io/component: controller}}}}
  template:
    metadata: {{labels: {{app.kubernetes.io/name: ingress-nginx, app.kubernetes.io/component: controller}}}}
    spec:
      serviceAccountName: ingress-nginx
      containers:
      - name: controller
        image: registry.k8s.io/ingress-nginx/controller:v1.11.2
        args: ["--publish-service=ingress-nginx/ingress-nginx-controller"]
        ports:
        - {{name: http, containerPort: 80, protocol: TCP}}
        - {{name: https, containerPort: 443, protocol: TCP}}
        readinessProbe:
          tcpSocket: {{port: 80}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: ingress-nginx-controller, namespace: ingress-nginx, labels: {{app.kubernetes.io/name: ingress-nginx}}}}
spec:
  type: NodePort
  selector: {{app.kubernetes.io/name: ingress-nginx, app.kubernetes.io/component: controller}}
  ports:
  - {{name: http, port: 80, targetPort: 80, nodePort: {HTTP_NODE_PORT}}}
  - {{name: https, port: 443, targetPort: 443, nodePort: {HTTPS_NODE_PORT}}}
"""


def ingress_objects() -> list[Resource]:
    return [item.obj for item in load_text(MANIFEST, "<ingress-nginx add-on>")]
