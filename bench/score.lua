-- wrk script: POST a realistic B2B lead to the URL wrk is given (/api/v1/score, or the
-- native reference route /bench/native-bant of `strata bench serve`, which ignores the
-- strategy). STRATA_KEY and STRATEGY come from the environment (see bench/load.sh).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("STRATA_KEY")
local strategy = os.getenv("STRATEGY") or "bant"
wrk.body = '{"strategy":"' .. strategy .. '","lead":{"id":"bench-1","name":"Dana Fox","title":"VP of Sales",' ..
  '"company":"Acme Robotics","industry":"Software","employees":450,"annual_revenue":40000000,' ..
  '"budget":80000,"timeline":"this quarter","source":"referral",' ..
  '"notes":"Evaluating vendors; manual scoring is slow and error-prone"}}'
