"""The call core: one call actor that every kind of call (caller room, group, meeting...) runs on."""
