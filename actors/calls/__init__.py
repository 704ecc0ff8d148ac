"""The call core: one call actor that every kind of call runs on.

A caller's room, a group consultation, a breakout room, a meeting room, a user room and a Consult
Now call differ in a handful of decisions, written as a :class:`~actors.calls.policy.CallPolicy`;
everything else is the same actor, :class:`~actors.calls.core.Call`. By idea:

* ``core``: the actor (entry, presence pushes, chat, hold, end, the grace, the mailbox loop);
* ``policy``: what a kind of call decides (who may enter, the limit, hold, end, storage, who is told);
* ``state``: the call's states and the moves between them;
* ``presence``: who is in, from which connection, with audio and video on or off;
* ``media``: signalling through the media port, answered off the mailbox loop;
* ``routing``: the call's own id and its ``call/<id>`` address.

``docs/lifecycle.md`` has the table of what each kind of call sets in its policy.
"""
