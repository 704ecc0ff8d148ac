"""On-demand sessions (issue 14): Meet Now, a live intake, claim / assign / decline, on call.

``messages`` holds what pages and other actors send (typed) and the wire shapes; ``queue`` the
per-organisation queue actor and its host; ``session`` the call on the core with its policy.
"""
