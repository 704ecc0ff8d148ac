"""Consult Now: a provider starts an unscheduled call by sending a single-use, time-limited link.

* ``desk``: the ``consult`` actor: sends links through the outbox, owns their expiry timers
  (``send_after``), extends and cancels them, opens one (once) and starts its call, rings the
  provider (the notice board) and pushes the provider's pages what changed;
* ``call``: the call that an opened link starts: :class:`ConsultNowPolicy` on the call core
  (``actors.calls``), with the invitations of the core (``actors.calls.invites``);
* ``messages``: what pages and the gateway ask of the desk, and its replies.

``docs/lifecycle.md`` (column "Consult Now call") and ``docs/protocol.md`` ("Consult Now").
"""
