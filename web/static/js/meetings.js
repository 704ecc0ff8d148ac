/* Meeting rooms and the user room on the console, live (issue 13).
 *
 * The server renders each room as free or in use (and by whom); this script keeps that true while
 * the console is open. On the staff socket that notices.js opens (WaitroomStaff) it sends
 * `meetings.watch`, whose reply says who is in every room this member may enter now, and then
 * follows `meetings.occupancy` ({id, people} for a meeting room, {user_room: true, people} for
 * their own room). Anyone with a meeting room's guest link can walk in, so who is in matters.
 */
(function () {
  "use strict";

  if (window.WaitroomMeetings) return; /* both console sections include this script */
  window.WaitroomMeetings = true;

  function text(people, free) {
    return people.length ? "In use: " + people.join(", ") : free;
  }

  function setRoom(id, people) {
    const line = document.querySelector('[data-meeting-id="' + id + '"] [data-meeting-people]');
    if (line) line.textContent = text(people, "Free");
  }

  function setOwn(people) {
    const line = document.querySelector("[data-user-room-people]");
    if (line) line.textContent = text(people, line.dataset.free);
  }

  function apply(body) {
    if (body.user_room) setOwn(body.people || []);
    else if (body.id !== undefined) setRoom(body.id, body.people || []);
  }

  function start() {
    if (!window.WaitroomStaff) return;
    window.WaitroomStaff.wire.on("meetings.occupancy", apply);
    window.WaitroomStaff.onReady(async (socket) => {
      try {
        const reply = await socket.request("meetings.watch", {});
        for (const room of reply.rooms || []) setRoom(room.id, room.people || []);
        if (reply.user_room) setOwn(reply.user_room.people || []);
      } catch (error) {
        /* the host is not there: the rendered state stands until the next load */
      }
    });
  }
  /* notices.js (deferred, in the header) defines WaitroomStaff before this deferred script runs. */
  if (window.WaitroomStaff) start();
  else document.addEventListener("DOMContentLoaded", start, { once: true });
})();
