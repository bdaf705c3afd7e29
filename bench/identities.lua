-- wrk script of the verdict-cache benchmark: request k carries Authorization: Bearer
-- client-(k mod 1000), as build/bench/loadgen rate --identities 1000 does.
local k = 0
request = function()
    local headers = {}
    for name, value in pairs(wrk.headers) do
        headers[name] = value
    end
    headers["Authorization"] = "Bearer client-" .. (k % 1000)
    k = k + 1
    return wrk.format(nil, nil, headers)
end
