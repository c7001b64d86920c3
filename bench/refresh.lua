-- wrk script: each thread owns one connection and one session, and
-- rotates that session's refresh token on every request, as a client
-- would (the token comes back in Set-Cookie).
local count = 0

function setup(thread)
  count = count + 1
  thread:set("index", count)
end

function init(args)
  local i = 0
  for line in io.lines(os.getenv("BENCH_REFRESH_TOKENS")) do
    i = i + 1
    if i == index then token = line end
  end
end

function request()
  return wrk.format("POST", "/auth/refresh", { ["Cookie"] = "__Secure-refresh_token=" .. token })
end

function response(status, headers, body)
  local cookie = headers["set-cookie"] or headers["Set-Cookie"]
  if cookie then
    token = cookie:match("__Secure%-refresh_token=([^;]+)") or token
  end
end
