#!/usr/bin/env bash
# Deletes every Redis key that starts with PREFIX:
#   scripts/redis-forget.sh PREFIX [redis-cli connection options]
# The scan and the deletes run inside Redis as one script, so a key holding
# quotes, spaces or line breaks (a fuzzed email ends up in a throttling
# key) goes like any other; piping `--scan` into xargs split such keys.
# Redis serves no one else while the script runs (about half a second per
# million keys): for test and benchmark servers, not a shared production one.
set -euo pipefail
prefix="${1:-}"
if [ -z "$prefix" ]; then
  echo "usage: scripts/redis-forget.sh PREFIX [redis-cli options] (an empty prefix would match every key)" >&2
  exit 2
fi
shift
# The prefix is matched literally: glob characters in it are escaped.
script='
local pattern = (ARGV[1]:gsub("[%*%?%[%]\\]", "\\%0")) .. "*"
local cursor, deleted = "0", 0
repeat
  local reply = redis.call("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
  cursor = reply[1]
  for _, key in ipairs(reply[2]) do
    redis.call("UNLINK", key)
    deleted = deleted + 1
  end
until cursor == "0"
return deleted
'
redis-cli "$@" EVAL "$script" 0 "$prefix"
