"""The HTML report: one self-contained page (nodes, pods, the connectivity heat map with each
cell's explanation, the policy graph, lint findings, recent denied flows) computed by the policy
engine itself (``podnet.policy.matrix``/``evaluate``/``lint``), never by a second evaluator."""
