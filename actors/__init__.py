"""Waitroom's actors, one folder per domain; they stand on ``runtime/`` (the actor kernel).

* ``calls/``: the call core every kind of call runs on;
* ``waiting/``: waiting areas, their opening hours and the caller rooms they open;
* ``staff/``: the directory (sessions, who may see what) and the sign-in desk;
* ``admin/``: clinic set-up, reports and audit, the outbox that sends links;
* top level: the supervision tree (``boot``), who is sending (``principal``) and the message
  vocabularies shared by several domains (``inbound`` with the gateway, ``messages`` with pages).
"""
