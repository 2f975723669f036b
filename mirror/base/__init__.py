"""The floor every package stands on: the error types a user can fix (`errors`), safe
file and directory writes with their locks (`files`), and the device mesh a population is
laid out on (`sharding`). Nothing here imports another part of mirror."""
