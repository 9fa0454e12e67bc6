/*
 * hostile - agora-env under bad input, over the real protocol.
 *
 * Starts agora-env (its path is argv[1]) on a free loopback port. A
 * well-behaved client opens a debate episode and plays it slowly while a
 * hostile client sends 10,000 bad messages of every kind a peer can produce:
 * random bytes, truncated protobuf, other services' envelopes, unknown games
 * and episodes, acting out of turn or from a seat that does not exist,
 * invalid, binary and over-long actions, wrong protocol versions, body-less
 * envelopes, random frame layouts, repeated fields and strings over their
 * limits (but within the message size limit). Each must be answered with the
 * right Error code and request id. Messages over the size limit go on their
 * own socket: ZeroMQ drops that connection without a reply, and the server
 * keeps answering everyone else. Then the hostile client's own episode (whose
 * state every bad step must have left unchanged) and a fresh one are played
 * to the end, the well-behaved episode finishes, and the server must still be
 * alive and exit with status 0 on SIGTERM.
 *
 * Every random choice comes from one seeded rng, so a failure reproduces.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "debate_player.h"
#include "env_client.h"
#include "fuzz.h"
#include "rng.h"
#include "server_proc.h"

#define HOSTILE_MESSAGES 10000
#define SCRATCH_BYTES (4u << 20)
#define MAX_FRAMES 6
#define MAX_KV 5000

enum kind {
    K_GARBAGE,
    K_TRUNCATED,
    K_WRONG_ENVELOPE,
    K_UNKNOWN_GAME,
    K_UNKNOWN_EPISODE,
    K_NOT_YOUR_TURN,
    K_BAD_SEAT,
    K_INVALID_ACTION,
    K_BINARY_ACTION,
    K_LONG_ACTION,
    K_VERSION,
    K_NO_BODY,
    K_FRAMES,
    K_MANY_OPTIONS,
    K_MANY_BOTS,
    K_DEMO_COUNT,
    K_LONG_STRING,
    K_BAD_OPTION,
    K_NEAR_LIMIT, /* a request of almost 1 MiB: sent only every 1000th message */
    N_KINDS
};

static const char *const kind_names[N_KINDS] = {
    "garbage bytes",    "truncated protobuf", "wrong envelope",     "unknown game",
    "unknown episode",  "not your turn",      "seat out of range",  "invalid action",
    "binary action",    "over-long action",   "version mismatch",   "missing body",
    "bad frame layout", "too many options",   "too many seat bots", "demo count",
    "over-long string", "bad option",         "near-limit request",
};

/* One hostile message and what the server must answer. */
typedef struct {
    ag_env_frame_t frames[MAX_FRAMES];
    size_t n_frames;
    int codes[2]; /* acceptable error codes */
    size_t n_codes;
    uint64_t want_id; /* 0 for requests that cannot be decoded */
    bool id_zero_ok;  /* a bounded decoder may give up on it: id 0 is right too */
} hostile_msg_t;

/* A seat's view of an episode the test plays with valid moves. */
typedef struct {
    uint64_t id;
    uint32_t to_act;
    char obs[1024];
    bool terminated;
    float rewards[2];
} game_t;

typedef struct {
    ag_server_proc_t srv;
    ag_env_client_t *hostile;
    ag_env_client_t *good;
    game_t good_game;    /* the well-behaved client's episode */
    game_t hostile_game; /* the hostile client's episode, target of bad steps */
    fuzz_t fz;           /* rng and scratch */
    Agora__V1__KeyValue *kv;
    Agora__V1__KeyValue **kvp;
    char **bots;
    int sent[N_KINDS];
} fixture_t;

static const char *server_exe;

/* ---- scratch space and hand encoding ------------------------------------------------- */

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

/* A Step envelope whose action is arbitrary bytes (protobuf-c strings stop at NUL). */
static ag_env_frame_t encode_step_bytes(fixture_t *fx, uint64_t request_id, uint64_t episode,
                                        uint32_t player, const uint8_t *action, size_t len)
{
    uint8_t *body = fuzz_take(&fx->fz, len + 32);
    size_t b = 0;
    body[b++] = 0x08; /* field 1 varint: episode_id */
    b += put_varint(body + b, episode);
    body[b++] = 0x10; /* field 2 varint: player */
    b += put_varint(body + b, player);
    body[b++] = 0x1a; /* field 3 length-delimited: action */
    b += put_varint(body + b, len);
    memcpy(body + b, action, len);
    b += len;

    uint8_t *env = fuzz_take(&fx->fz, b + 32);
    size_t e = 0;
    env[e++] = 0x08; /* protocol_version */
    e += put_varint(env + e, AG_ENV_PROTOCOL_VERSION);
    env[e++] = 0x10; /* request_id */
    e += put_varint(env + e, request_id);
    env[e++] = 0x62; /* field 12 length-delimited: step */
    e += put_varint(env + e, b);
    memcpy(env + e, body, b);
    e += b;
    return (ag_env_frame_t){env, e};
}

static ag_env_frame_t pack_env(fixture_t *fx, const Agora__V1__EnvRequest *req)
{
    size_t len = agora__v1__env_request__get_packed_size(req);
    uint8_t *p = fuzz_take(&fx->fz, len);
    agora__v1__env_request__pack(req, p);
    return (ag_env_frame_t){p, len};
}

static void expect_codes(hostile_msg_t *m, int a, int b)
{
    m->codes[0] = a;
    m->codes[1] = b ? b : a;
    m->n_codes = 2;
}

/* ---- the hostile messages ------------------------------------------------------------- */

#define E(name) AGORA__V1__ERROR_CODE__ERROR_##name

static void build_request(fixture_t *fx, hostile_msg_t *m, Agora__V1__EnvRequest *req)
{
    req->protocol_version = AG_ENV_PROTOCOL_VERSION;
    req->request_id = ag_env_client_new_id(fx->hostile);
    m->want_id = req->request_id;
    m->frames[0] = pack_env(fx, req);
    m->n_frames = 1;
}

static void make_garbage(fixture_t *fx, hostile_msg_t *m)
{
    /* Half the time REQ-style, [empty][payload]: the error must come back the same way. */
    m->n_frames = fuzz_garbage(&fx->fz, &agora__v1__env_request__descriptor, 300, m->frames);
    expect_codes(m, E(BAD_REQUEST), 0);
    m->want_id = 0;
}

static void make_truncated(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    reset.game = "debate";
    reset.seed = ag_rng_u64(&fx->fz.rng);
    reset.n_options = 2;
    reset.options = fx->kvp;
    fx->kv[0].key = "k";
    fx->kv[0].value = "6";
    fx->kv[1].key = "invalid_action";
    fx->kv[1].value = "error";
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
    req.reset = &reset;
    build_request(fx, m, &req);
    m->frames[0] = fuzz_truncate(&fx->fz, m->frames[0], &agora__v1__env_request__descriptor);
    expect_codes(m, E(BAD_REQUEST), 0);
    m->want_id = 0;
}

/*
 * Other services' envelopes share the header (fields 1 and 2) but not the
 * body fields: one reads as an EnvRequest without a body (its id echoed) or,
 * where a field number meets another wire type, not at all (id 0).
 */
static void make_wrong_envelope(fixture_t *fx, hostile_msg_t *m)
{
    uint64_t id = ag_env_client_new_id(fx->hostile);
    m->frames[0] = fuzz_foreign_envelope(&fx->fz, &agora__v1__env_request__descriptor, id);
    m->n_frames = 1;
    expect_codes(m, E(BAD_REQUEST), 0);
    m->want_id = id;
    m->id_zero_ok = true;
}

static void make_unknown_game(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    Agora__V1__DemoRequest demo = AGORA__V1__DEMO_REQUEST__INIT;
    /* The "zz-" prefix keeps it clear of every real game name. */
    char *name =
        fuzz_text(&fx->fz, fuzz_between(&fx->fz, 3, 64), "abcdefghijklmnopqrstuvwxyz-_0123456789");
    memcpy(name, "zz-", 3);
    if (ag_rng_below(&fx->fz.rng, 2)) {
        reset.game = name;
        reset.seed = ag_rng_u64(&fx->fz.rng);
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
        req.reset = &reset;
    } else {
        demo.game = name;
        demo.count = 1;
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_DEMO;
        req.demo = &demo;
    }
    build_request(fx, m, &req);
    expect_codes(m, E(UNKNOWN_GAME), 0);
}

static void make_unknown_episode(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__StepRequest step = AGORA__V1__STEP_REQUEST__INIT;
    Agora__V1__CloseRequest close = AGORA__V1__CLOSE_REQUEST__INIT;
    /* Top bit set: far from any id a server hands out by counting. */
    uint64_t id = ag_rng_u64(&fx->fz.rng) | (1ULL << 63);
    if (ag_rng_below(&fx->fz.rng, 2)) {
        step.episode_id = id;
        step.player = ag_rng_below(&fx->fz.rng, 2);
        step.action = "1";
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_STEP;
        req.step = &step;
    } else {
        close.episode_id = id;
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_CLOSE;
        req.close = &close;
    }
    build_request(fx, m, &req);
    expect_codes(m, E(UNKNOWN_EPISODE), 0);
}

/* A Step on the hostile client's own episode. */
static void make_step(fixture_t *fx, hostile_msg_t *m, uint32_t player, char *action)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__StepRequest step = AGORA__V1__STEP_REQUEST__INIT;
    step.episode_id = fx->hostile_game.id;
    step.player = player;
    step.action = action;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_STEP;
    req.step = &step;
    build_request(fx, m, &req);
}

static void make_not_your_turn(fixture_t *fx, hostile_msg_t *m)
{
    /* The most tempting case: a perfectly valid move, from the other seat. */
    char *move = (char *)fuzz_take(&fx->fz, AG_DEBATE_PLAYER_MOVE_CAP);
    assert_true(ag_debate_player_move(fx->hostile_game.obs, move));
    make_step(fx, m, 1 - fx->hostile_game.to_act, move);
    expect_codes(m, E(NOT_YOUR_TURN), 0);
}

static void make_bad_seat(fixture_t *fx, hostile_msg_t *m)
{
    char *move = (char *)fuzz_take(&fx->fz, AG_DEBATE_PLAYER_MOVE_CAP);
    assert_true(ag_debate_player_move(fx->hostile_game.obs, move));
    uint32_t seat = ag_rng_below(&fx->fz.rng, 2) ? fuzz_between(&fx->fz, 2, 9)
                                                 : (uint32_t)ag_rng_u64(&fx->fz.rng);
    make_step(fx, m, seat < 2 ? 2 : seat, move);
    expect_codes(m, E(NOT_YOUR_TURN), E(BAD_REQUEST));
}

static void make_invalid_action(fixture_t *fx, hostile_msg_t *m)
{
    /* Printable junk with at least one letter: never a chain of digits. */
    size_t len = fuzz_between(&fx->fz, 1, 60);
    char *a = fuzz_text(&fx->fz, len, "abcxyz0123456789 +-*\t\n");
    a[ag_rng_below(&fx->fz.rng, (uint32_t)len)] = 'x';
    make_step(fx, m, fx->hostile_game.to_act, a);
    expect_codes(m, E(INVALID_ACTION), 0);
}

static void make_binary_action(fixture_t *fx, hostile_msg_t *m)
{
    size_t len = fuzz_between(&fx->fz, 1, 100);
    uint8_t *a = fuzz_take(&fx->fz, len);
    for (size_t i = 0; i < len; i++)
        a[i] = (uint8_t)ag_rng_u64(&fx->fz.rng);
    a[0] = 'x'; /* whatever the server reads up to a NUL is not a move either */
    a[ag_rng_below(&fx->fz.rng, (uint32_t)len)] = 0;
    uint64_t id = ag_env_client_new_id(fx->hostile);
    m->frames[0] = encode_step_bytes(fx, id, fx->hostile_game.id, fx->hostile_game.to_act, a, len);
    m->n_frames = 1;
    m->want_id = id;
    expect_codes(m, E(INVALID_ACTION), E(BAD_REQUEST));
}

static void make_long_action(fixture_t *fx, hostile_msg_t *m)
{
    size_t len = fuzz_between(&fx->fz, AG_ENV_MAX_ACTION + 1, 4 * AG_ENV_MAX_ACTION);
    char *a = fuzz_text(&fx->fz, len, "0123456789 ");
    make_step(fx, m, fx->hostile_game.to_act, a);
    expect_codes(m, E(INVALID_ACTION), E(BAD_REQUEST));
}

static void make_version(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    hello.client_name = "hostile";
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
    req.hello = &hello;
    uint32_t r = ag_rng_below(&fx->fz.rng, 4);
    req.protocol_version = r == 0 ? 0 : r == 1 ? 2 : fuzz_between(&fx->fz, 3, UINT32_MAX);
    req.request_id = ag_env_client_new_id(fx->hostile);
    m->want_id = req.request_id;
    m->frames[0] = pack_env(fx, &req);
    m->n_frames = 1;
    expect_codes(m, E(VERSION_MISMATCH), 0);
}

static void make_no_body(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    build_request(fx, m, &req);
    expect_codes(m, E(BAD_REQUEST), 0);
}

static void make_frames(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    hello.client_name = "hostile";
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
    req.hello = &hello;
    build_request(fx, m, &req);
    bool empty_payload;
    m->n_frames = fuzz_frames(&fx->fz, m->frames[0], m->frames, MAX_FRAMES, &empty_payload);
    /* [empty][empty] is REQ framing around an empty payload, an envelope of defaults */
    if (empty_payload) {
        expect_codes(m, E(BAD_REQUEST), E(VERSION_MISMATCH));
        m->want_id = 0;
        return;
    }
    expect_codes(m, E(BAD_REQUEST), 0);
    m->want_id = 0;
}

static void make_many_options(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    Agora__V1__DemoRequest demo = AGORA__V1__DEMO_REQUEST__INIT;
    size_t n = fuzz_between(&fx->fz, 33, MAX_KV);
    for (size_t i = 0; i < n; i++) {
        fx->kv[i].key = i % 2 ? "k" : "invalid_action";
        fx->kv[i].value = i % 2 ? "8" : "error";
    }
    if (ag_rng_below(&fx->fz.rng, 2)) {
        reset.game = "debate";
        reset.n_options = n;
        reset.options = fx->kvp;
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
        req.reset = &reset;
    } else {
        demo.game = "debate";
        demo.count = 1;
        demo.n_options = n;
        demo.options = fx->kvp;
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_DEMO;
        req.demo = &demo;
    }
    build_request(fx, m, &req);
    expect_codes(m, E(BAD_REQUEST), 0);
    /*
     * Thousands of tiny entries make a decoder allocate many times the input;
     * a bounded decoder may refuse before it can read the id (protocol.md §4, step 2).
     */
    m->id_zero_ok = true;
}

static void make_many_bots(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    reset.game = "debate";
    reset.n_seat_bots = fuzz_between(&fx->fz, 9, MAX_KV);
    reset.seat_bots = fx->bots;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
    req.reset = &reset;
    build_request(fx, m, &req);
    expect_codes(m, E(BAD_REQUEST), 0);
    m->id_zero_ok = true; /* as for make_many_options */
}

static void make_demo_count(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__DemoRequest demo = AGORA__V1__DEMO_REQUEST__INIT;
    demo.game = "debate";
    uint32_t r = ag_rng_below(&fx->fz.rng, 3);
    demo.count = r == 0 ? 0 : r == 1 ? 257 : fuzz_between(&fx->fz, 258, UINT32_MAX - 1);
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_DEMO;
    req.demo = &demo;
    build_request(fx, m, &req);
    expect_codes(m, E(BAD_REQUEST), 0);
}

static void make_long_string(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    Agora__V1__DemoRequest demo = AGORA__V1__DEMO_REQUEST__INIT;
    Agora__V1__HelloRequest hello = AGORA__V1__HELLO_REQUEST__INIT;
    const char *az = "abcdefghijklmnopqrstuvwxyz";
    reset.game = "debate";
    reset.options = fx->kvp;
    switch (ag_rng_below(&fx->fz.rng, 5)) {
    case 0:
        reset.game = fuzz_text(&fx->fz, fuzz_between(&fx->fz, 65, 5000), az);
        break;
    case 1:
        reset.n_options = 1;
        fx->kv[0].key = fuzz_text(&fx->fz, fuzz_between(&fx->fz, 65, 5000), az);
        fx->kv[0].value = "1";
        break;
    case 2:
        reset.n_options = 1;
        fx->kv[0].key = "k";
        fx->kv[0].value = fuzz_text(&fx->fz, fuzz_between(&fx->fz, 257, 5000), "0123456789");
        break;
    case 3:
        demo.game = fuzz_text(&fx->fz, fuzz_between(&fx->fz, 65, 5000), az);
        demo.count = 1;
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_DEMO;
        req.demo = &demo;
        break;
    default:
        hello.client_name = fuzz_text(&fx->fz, fuzz_between(&fx->fz, 257, 5000), az);
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_HELLO;
        req.hello = &hello;
        break;
    }
    if (req.body_case == AGORA__V1__ENV_REQUEST__BODY__NOT_SET) {
        req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
        req.reset = &reset;
    }
    build_request(fx, m, &req);
    expect_codes(m, E(BAD_REQUEST), 0);
}

static void make_bad_option(fixture_t *fx, hostile_msg_t *m)
{
    static const char *const bad[][2] = {{"k", "0"},          {"k", "1000"},
                                         {"k", "abc"},        {"k", ""},
                                         {"zz-no-such", "1"}, {"invalid_action", "maybe"},
                                         {"k", "8x"},         {"k", "-3"}};
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    uint32_t i = ag_rng_below(&fx->fz.rng, sizeof bad / sizeof bad[0]);
    fx->kv[0].key = (char *)bad[i][0];
    fx->kv[0].value = (char *)bad[i][1];
    reset.game = "debate";
    reset.n_options = 1;
    reset.options = fx->kvp;
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
    req.reset = &reset;
    build_request(fx, m, &req);
    expect_codes(m, E(BAD_OPTION), 0);
}

/* Just under the 1 MiB request limit: must be read and refused, not dropped. */
static void make_near_limit(fixture_t *fx, hostile_msg_t *m)
{
    Agora__V1__EnvRequest req = AGORA__V1__ENV_REQUEST__INIT;
    Agora__V1__ResetRequest reset = AGORA__V1__RESET_REQUEST__INIT;
    reset.game = "debate";
    reset.n_options = 1;
    reset.options = fx->kvp;
    fx->kv[0].key = "k";
    fx->kv[0].value = fuzz_text(&fx->fz, AG_ENV_SERVER_MAX_REQUEST - 4096, "0123456789");
    req.body_case = AGORA__V1__ENV_REQUEST__BODY_RESET;
    req.reset = &reset;
    build_request(fx, m, &req);
    assert_true(m->frames[0].size < AG_ENV_SERVER_MAX_REQUEST);
    expect_codes(m, E(BAD_REQUEST), 0);
}

static void make_hostile(fixture_t *fx, enum kind k, hostile_msg_t *m)
{
    static void (*const makers[N_KINDS])(fixture_t *, hostile_msg_t *) = {
        make_garbage,         make_truncated,     make_wrong_envelope, make_unknown_game,
        make_unknown_episode, make_not_your_turn, make_bad_seat,       make_invalid_action,
        make_binary_action,   make_long_action,   make_version,        make_no_body,
        make_frames,          make_many_options,  make_many_bots,      make_demo_count,
        make_long_string,     make_bad_option,    make_near_limit,
    };
    memset(m, 0, sizeof *m);
    fuzz_reset(&fx->fz);
    makers[k](fx, m);
}

/* ---- playing valid games -------------------------------------------------------------- */

static void start_game(ag_env_client_t *cl, uint64_t seed, game_t *g)
{
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_reset(cl, "debate", seed, NULL, 0, NULL, 0, &r), 0);
    if (r->body_case != AGORA__V1__ENV_REPLY__BODY_RESET)
        fail_msg("Reset: %s %s", ag_env_reply_kind(r), ag_error_name(ag_env_reply_error(r)));
    memset(g, 0, sizeof *g);
    g->id = r->reset->episode_id;
    g->to_act = r->reset->to_act;
    snprintf(g->obs, sizeof g->obs, "%s", r->reset->observation);
    assert_int_equal(r->reset->num_players, 2);
    agora__v1__env_reply__free_unpacked(r, NULL);
}

/* Plays the move for the seat to act; the reply must be a Step result. */
static void play_move(ag_env_client_t *cl, game_t *g)
{
    char move[AG_DEBATE_PLAYER_MOVE_CAP];
    assert_false(g->terminated);
    if (!ag_debate_player_move(g->obs, move))
        fail_msg("no move for observation \"%s\"", g->obs);
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_step(cl, g->id, g->to_act, move, &r), 0);
    if (r->body_case != AGORA__V1__ENV_REPLY__BODY_STEP)
        fail_msg("Step \"%s\" by seat %u: %s %s (%s)", move, (unsigned)g->to_act,
                 ag_env_reply_kind(r), ag_error_name(ag_env_reply_error(r)),
                 r->error && r->error->message ? r->error->message : "");
    const Agora__V1__StepReply *s = r->step;
    g->to_act = s->to_act;
    snprintf(g->obs, sizeof g->obs, "%s", s->observation);
    g->terminated = s->terminated;
    for (size_t i = 0; i < s->n_rewards && i < 2; i++)
        g->rewards[i] += s->rewards[i];
    agora__v1__env_reply__free_unpacked(r, NULL);
}

/* A finished debate: one winner, one loser, removed from the server. */
static void assert_finished(ag_env_client_t *cl, const game_t *g)
{
    assert_true(g->terminated);
    assert_true((g->rewards[0] == 1 && g->rewards[1] == -1) ||
                (g->rewards[0] == -1 && g->rewards[1] == 1));
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_close(cl, g->id, &r), 0);
    assert_int_equal(ag_env_reply_error(r), E(UNKNOWN_EPISODE));
    agora__v1__env_reply__free_unpacked(r, NULL);
}

static void assert_hello(ag_env_client_t *cl)
{
    Agora__V1__EnvReply *r = NULL;
    assert_int_equal(ag_env_client_hello(cl, "hostile-test", &r), 0);
    assert_int_equal(r->body_case, AGORA__V1__ENV_REPLY__BODY_HELLO);
    agora__v1__env_reply__free_unpacked(r, NULL);
}

/* ---- fixture -------------------------------------------------------------------------- */

static int teardown(void **state)
{
    fixture_t *fx = *state;
    if (!fx)
        return 0;
    ag_env_client_destroy(&fx->hostile);
    ag_env_client_destroy(&fx->good);
    if (fx->srv.pid)
        ag_server_proc_stop(&fx->srv, 5000);
    fuzz_finish(&fx->fz);
    free(fx->kv);
    free(fx->kvp);
    free(fx->bots);
    free(fx);
    *state = NULL;
    return 0;
}

static int setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    *state = fx;
    if (!fx)
        return -1;
    fx->kv = calloc(MAX_KV, sizeof *fx->kv);
    fx->kvp = calloc(MAX_KV, sizeof *fx->kvp);
    fx->bots = calloc(MAX_KV, sizeof *fx->bots);
    if (fuzz_init(&fx->fz, SCRATCH_BYTES, 20240601) < 0 || !fx->kv || !fx->kvp || !fx->bots)
        goto fail;
    for (size_t i = 0; i < MAX_KV; i++) {
        agora__v1__key_value__init(&fx->kv[i]);
        fx->kvp[i] = &fx->kv[i];
        fx->bots[i] = "";
    }
    if (ag_server_proc_start(&fx->srv, server_exe, NULL, 10000))
        goto fail;
    fx->hostile = ag_env_client_create(fx->srv.endpoint, 3000);
    fx->good = ag_env_client_create(fx->srv.endpoint, 3000);
    if (!fx->hostile || !fx->good)
        goto fail;
    /* Errors must come at once; a retry would hide a lost reply. */
    ag_env_client_set_retries(fx->hostile, 0);
    ag_env_client_set_retries(fx->good, 0);
    return 0;
fail:
    /* CMocka skips the group teardown when setup fails: do not leave the server running. */
    teardown(state);
    return -1;
}

/* ---- tests ---------------------------------------------------------------------------- */

static void send_and_check(fixture_t *fx, enum kind k, int i)
{
    hostile_msg_t m;
    make_hostile(fx, k, &m);
    assert_int_equal(ag_env_client_send_frames(fx->hostile, m.frames, m.n_frames), 0);
    Agora__V1__EnvReply *r = NULL;
    ag_env_reply_shape_t shape;
    int rc = ag_env_client_recv(fx->hostile, 5000, &r, &shape);
    if (rc)
        fail_msg("message %d (%s): no decodable reply (%d)", i, kind_names[k], rc);
    int code = ag_env_reply_error(r);
    bool ok = code == m.codes[0] || code == m.codes[1];
    if (!ok || (r->request_id != m.want_id && !(m.id_zero_ok && r->request_id == 0)))
        fail_msg("message %d (%s): expected %s with request_id %llu, got %s %s with "
                 "request_id %llu (%s)",
                 i, kind_names[k], ag_error_name(m.codes[0]), (unsigned long long)m.want_id,
                 ag_env_reply_kind(r), ag_error_name(code), (unsigned long long)r->request_id,
                 r->error && r->error->message ? r->error->message : "");
    if (r->protocol_version != AG_ENV_PROTOCOL_VERSION)
        fail_msg("message %d (%s): reply protocol_version %u", i, kind_names[k],
                 (unsigned)r->protocol_version);
    /* A well-framed request is answered in its own frame layout. */
    bool delimited = m.n_frames == 2 && m.frames[0].size == 0 && m.frames[1].size > 0;
    if (k == K_GARBAGE && shape.delimited != delimited)
        fail_msg("message %d (%s): reply framing does not match the request's", i, kind_names[k]);
    agora__v1__env_reply__free_unpacked(r, NULL);
    fx->sent[k]++;
}

static void test_hostile_flood(void **state)
{
    fixture_t *fx = *state;
    start_game(fx->good, 4242, &fx->good_game);
    start_game(fx->hostile, 777, &fx->hostile_game);

    for (int i = 0; i < HOSTILE_MESSAGES; i++) {
        enum kind k =
            i % 1000 == 999 ? K_NEAR_LIMIT : (enum kind)ag_rng_below(&fx->fz.rng, N_KINDS - 1);
        send_and_check(fx, k, i);
        if (i % 1000 == 500)
            assert_hello(fx->good);
        /* The well-behaved client plays its first three turns during the flood. */
        if (i == 2500 || i == 5000 || i == 7500)
            play_move(fx->good, &fx->good_game);
    }
    for (int k = 0; k < N_KINDS; k++) {
        print_message("  %-20s %5d\n", kind_names[k], fx->sent[k]);
        assert_true(fx->sent[k] > 0);
    }
}

/* Over the size limit: ZeroMQ drops that connection, no reply, everyone else served. */
static void test_oversize(void **state)
{
    fixture_t *fx = *state;
    const size_t sizes[] = {AG_ENV_SERVER_MAX_REQUEST + 4096, 4 * AG_ENV_SERVER_MAX_REQUEST};
    for (size_t i = 0; i < 2; i++) {
        /* One-frame and REQ-style two-frame layouts. */
        int rc = fuzz_send_oversize(fx->srv.endpoint, sizes[i], i == 1, 1000);
        if (rc)
            fail_msg("a %zu-byte request: %s", sizes[i],
                     rc == -EPROTO ? "answered" : strerror(-rc));
        assert_hello(fx->hostile);
        assert_hello(fx->good);
    }
}

static void test_valid_games_after(void **state)
{
    fixture_t *fx = *state;
    /* Thousands of refused steps later, the hostile client's episode is where it was. */
    assert_int_equal(fx->hostile_game.to_act, 0);
    for (int t = 0; t < 4; t++)
        play_move(fx->hostile, &fx->hostile_game);
    assert_finished(fx->hostile, &fx->hostile_game);

    game_t g;
    start_game(fx->hostile, 99, &g);
    for (int t = 0; t < 4; t++)
        play_move(fx->hostile, &g);
    assert_finished(fx->hostile, &g);

    /* The well-behaved client's last turn ends the episode it kept open throughout. */
    play_move(fx->good, &fx->good_game);
    assert_finished(fx->good, &fx->good_game);
}

static void test_clean_exit(void **state)
{
    fixture_t *fx = *state;
    assert_true(ag_server_proc_alive(&fx->srv));
    assert_int_equal(ag_server_proc_stop(&fx->srv, 10000), 0);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: hostile AGORA_ENV_BINARY\n");
        return 2;
    }
    server_exe = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_flood),
        cmocka_unit_test(test_oversize),
        cmocka_unit_test(test_valid_games_after),
        cmocka_unit_test(test_clean_exit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
