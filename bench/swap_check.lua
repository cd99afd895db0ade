-- wrk script: POST /api/v1/score to BANT while versions are swapped in; every response's
-- (strategy, sha256) pair and every non-200 are counted per thread and printed at the
-- end, for bench/swap_under_load.sh to check against the versions it deployed.
-- STRATA_KEY comes from the environment.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("STRATA_KEY")
wrk.body = '{"strategy":"bant","lead":{"id":"swap-1","name":"Dana Fox","title":"VP of Sales",' ..
  '"company":"Acme Robotics","industry":"Software","employees":450,"annual_revenue":40000000,' ..
  '"budget":80000,"timeline":"this quarter","source":"referral"}}'

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  pairs_seen = {}
  failed = 0
end

function response(status, headers, body)
  if status ~= 200 then
    failed = failed + 1
    return
  end
  local strategy = string.match(body, '"strategy":"([^"]*)"')
  local sha = string.match(body, '"sha256":"([0-9a-f]*)"')
  local key = (strategy or "?") .. " " .. (sha or "?")
  pairs_seen[key] = (pairs_seen[key] or 0) + 1
end

function done(summary, latency, requests)
  local total, seen = 0, {}
  for _, t in ipairs(threads) do
    total = total + t:get("failed")
    for k, n in pairs(t:get("pairs_seen")) do
      seen[k] = (seen[k] or 0) + n
    end
  end
  io.write(string.format("failed %d\n", total))
  for k, n in pairs(seen) do
    io.write(string.format("pair %s %d\n", k, n))
  end
end
