"""`understudy drill`: the client side of a drill, the proof that the fallback works end to end.

One concept a module:

    scenarios   the standard scenarios, declared: which tiers a fault hits, of what kind
    expect      what the chain's policy makes of those faults: who answers, and what users read
    page        what a user sees of a reply, read from the fragments the page applies
    user_path   one browser session's message: POST it, follow its SSE stream to the end
    admin_api   the server's drill API (web.drills): log in, start, end
    stats       percentiles, and the checks a drill's turns are held to
    report      the verdict, as JSON and Markdown
    engine      one drill: start, drive, abort conditions, end (always); quarterly
    recovery    once it has ended: the primary must answer an ordinary message again
    inprocess   the app on the simulator, in this process, when there is no --target
    prompts     the shipped representative prompts (prompts.txt) and --prompt-file
    command     the command itself: options, progress on stderr, exit codes

The server side (the drills table, the fault injection, the API) is :mod:`web.drills`.
"""
