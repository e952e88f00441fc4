"""nftables as plain values, for every table podnet owns.

``model`` (tables, sets, maps, chains, rules; canonical elements; reading a listing back),
``expr`` (rule statements), ``diff`` (desired vs observed → one transaction), ``tracker`` (a
table's contents kept current after a render), and the renderers: ``render`` (the ``inet
podnet`` policy table), ``nat`` (the ``ip podnet-nat`` natOutgoing table). ``live`` plans pod
and policy changes on the live policy table; ``recheck`` names the pods a commit changed and
judges their tracked flows (``flows``: the values); ``verify`` compares the engine's matrix with
what probes saw.
"""
