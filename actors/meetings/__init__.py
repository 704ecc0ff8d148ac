"""Meeting rooms and user rooms: permanent rooms whose calls run on the call core.

* ``policies``: what each sets on the core (:class:`MeetingRoomPolicy`, :class:`UserRoomPolicy`);
* ``rooms``: their call actors (``room/<id>``), one per call, started on demand;
* ``host``: ``meetings``, which starts them, answers staff and guests, and administers the rooms;
* ``messages``: what pages and the host send.
"""
