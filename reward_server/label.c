/*
 * label.c - agora-label: feeds labels from a JSONL file to a reward server.
 *
 * Each line of the file is one label: a preference between two transcripts or
 * an outcome of one transcript (the format is in reward_server/README.md).
 * Lines are checked here against the format and the protocol's limits, so a
 * bad line is reported with its number and skipped instead of making the
 * server refuse a whole request; the valid ones go out as LabelRequests of at
 * most --batch labels and 16 MiB, one request in flight at a time, over the
 * project's DEALER client (deadline and bounded retries per request). Each
 * request carries a batch id, "label/<random 64-bit hex, one per run>/<n>",
 * the same on every resend of it, so a retry after a lost reply is answered
 * as a duplicate and learnt once; running the tool twice on a file posts it
 * twice. An OVERLOADED reply is resent after a growing, jittered pause; any other
 * error reply stops the run. One summary line at the end says what happened to every
 * line; the exit status says whether everything valid was accepted.
 *
 * The file is untrusted: a line is read into a fixed buffer and anything
 * longer than a line can legitimately be is skipped unparsed, so no input
 * (binary garbage, NUL bytes, endless lines, deep nesting) costs more than a
 * bounded amount of memory or can crash the tool.
 */
#include <errno.h>
#include <fcntl.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "backoff.h"
#include "codec.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "reward.pb-c.h"
#include "rng.h"
#include "rpc.h"

/* Protocol limits (docs/protocol.md §6). */
#define MAX_TRANSCRIPT 65536
#define MAX_GAME 64
#define MAX_MODEL 64
#define MAX_BATCH 256
#define MAX_MESSAGE (16 << 20)
/* Room for the envelope around the labels: header, model name, oneof tag. */
#define ENVELOPE_ROOM 1024
/*
 * The longest line that can hold a valid label: two transcripts at the limit
 * with every byte written as a \u escape (six characters), plus room for the
 * other keys. Longer lines are skipped without being parsed.
 */
#define MAX_LINE (2 * MAX_TRANSCRIPT * 6 + 65536)
/* A batch answered OVERLOADED is resent after a pause that doubles from
 * RESEND_FIRST_MS to RESEND_MAX_MS, jittered, until label.max_wait_s is spent. */
#define RESEND_FIRST_MS 100
#define RESEND_MAX_MS 5000
/* Beyond this many, malformed lines are counted but no longer reported one by one. */
#define MAX_REPORTS 100

/* Exit statuses: 0 = every valid label accepted. */
enum { EXIT_SOME_BAD = 1, EXIT_FAILED = 2 };

/* agora-label's options ([label] of a run file), filled from s_options. */
typedef struct label_opts {
    const char *reward, *model, *stats;
    long batch, timeout_ms, attempts, max_wait_s;
} label_opts_t;

#define OPT(f, ...) AG_OPT(label_opts_t, f, __VA_ARGS__)
static const ag_option_t s_options[] = {
    OPT(reward, "label.reward", "reward", "", 0, 0,
        "reward server endpoint, e.g. tcp://127.0.0.1:5560 (required)"),
    OPT(model, "label.model", "model", "default", 1, MAX_MODEL, "reward model the labels are for"),
    OPT(batch, "label.batch", "batch", "256", 1, MAX_BATCH, "labels per LabelRequest"),
    OPT(timeout_ms, "label.timeout_ms", "timeout-ms", "5000", 10, 3600000,
        "deadline of one attempt of a request"),
    OPT(attempts, "label.attempts", "attempts", "3", 1, 100,
        "attempts per request before giving up (every attempt carries the request's batch id: "
        "a retry of a request the server took is answered as a duplicate, not learnt twice)"),
    OPT(max_wait_s, "label.max_wait_s", "max-wait", "120", 0, 86400,
        "how long to keep resending a batch the server answers OVERLOADED (seconds)"),
    OPT(stats, "label.stats", "stats", "", 0, MAX_MODEL,
        "after the file (or without one): print the Stats of this model, or of `all`, as one "
        "JSON line per model"),
};
#undef OPT

/* ---- reading lines ---- */

typedef struct reader {
    FILE *f;
    bool eof;
    size_t pos, end;
    char buf[1 << 16];
} reader_t;

/*
 * Reads the next line, without its '\n', into line (cap bytes, not
 * terminated). Returns 1 with *len bytes kept and *total the whole line's
 * length (more than cap when it was cut), 0 at the end of the input, or
 * -errno on a read error. NUL bytes are ordinary bytes here.
 */
static int s_read_line(reader_t *r, char *line, size_t cap, size_t *len, size_t *total)
{
    *len = 0;
    *total = 0;
    bool any = false;
    for (;;) {
        if (r->pos == r->end) {
            if (r->eof)
                return any ? 1 : 0;
            r->pos = 0;
            r->end = fread(r->buf, 1, sizeof r->buf, r->f);
            if (r->end == 0) {
                if (ferror(r->f))
                    return -EIO;
                r->eof = true;
                continue;
            }
        }
        any = true;
        const char *start = r->buf + r->pos;
        size_t avail = r->end - r->pos;
        const char *nl = memchr(start, '\n', avail);
        size_t n = nl ? (size_t)(nl - start) : avail;
        if (*len < cap) {
            size_t keep = n < cap - *len ? n : cap - *len;
            memcpy(line + *len, start, keep);
            *len += keep;
        }
        *total += n;
        r->pos += n + (nl ? 1 : 0);
        if (nl)
            return 1;
    }
}

/* ---- parsing one label ---- */

typedef struct label {
    bool is_pref;
    Agora__V1__ScoreItem item[2]; /* a, b of a preference; item[0] of an outcome */
    Agora__V1__Preference pref;
    Agora__V1__Outcome outcome;
} label_t;

/* Copies text into out as printable ASCII (for keys that may hold anything). */
static const char *s_printable(const char *text, char *out, size_t cap)
{
    size_t n = 0;
    for (; *text && n + 4 < cap; text++)
        out[n++] = (*text >= 0x20 && *text < 0x7f) ? *text : '?';
    if (*text) {
        memcpy(out + n, "...", 3);
        n += 3;
    }
    out[n] = '\0';
    return out;
}

static int s_string(json_t *o, const char *key, size_t max, bool required, const char **out,
                    char *why, size_t why_len)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            snprintf(why, why_len, "missing \"%s\"", key);
        return required ? -1 : 0;
    }
    if (!json_is_string(v)) {
        snprintf(why, why_len, "\"%s\" must be a string", key);
        return -1;
    }
    size_t n = json_string_length(v);
    /* Protocol strings are C strings on the server side: a NUL would cut them short. */
    if (strlen(json_string_value(v)) != n) {
        snprintf(why, why_len, "\"%s\" contains a NUL character (\\u0000)", key);
        return -1;
    }
    if (n > max) {
        snprintf(why, why_len, "\"%s\" is %zu bytes, over the protocol's limit of %zu", key, n,
                 max);
        return -1;
    }
    *out = json_string_value(v);
    return 0;
}

static int s_seat(json_t *o, const char *key, uint32_t *out, char *why, size_t why_len)
{
    json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) > (json_int_t)UINT32_MAX) {
        snprintf(why, why_len, "\"%s\" must be an integer in 0..%u", key, UINT32_MAX);
        return -1;
    }
    *out = (uint32_t)json_integer_value(v);
    return 0;
}

/* A number in [min, max]; a missing optional one leaves *out alone. */
static int s_number(json_t *o, const char *key, double min, double max, bool required, float *out,
                    char *why, size_t why_len)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        if (required)
            snprintf(why, why_len, "missing \"%s\"", key);
        return required ? -1 : 0;
    }
    if (!json_is_number(v) || !(json_number_value(v) >= min && json_number_value(v) <= max)) {
        if (max == FLT_MAX)
            snprintf(why, why_len, "\"%s\" must be a number >= %g", key, min);
        else
            snprintf(why, why_len, "\"%s\" must be a number in [%g, %g]", key, min, max);
        return -1;
    }
    *out = (float)json_number_value(v);
    return 0;
}

static int s_preferred(json_t *o, uint32_t *out, char *why, size_t why_len)
{
    json_t *v = json_object_get(o, "preferred");
    if (v && json_is_string(v) && json_string_length(v) == 1 &&
        (json_string_value(v)[0] == 'a' || json_string_value(v)[0] == 'b')) {
        *out = json_string_value(v)[0] == 'a' ? 0 : 1;
        return 0;
    }
    if (v && json_is_integer(v) && (json_integer_value(v) == 0 || json_integer_value(v) == 1)) {
        *out = (uint32_t)json_integer_value(v);
        return 0;
    }
    snprintf(why, why_len, "%s",
             v ? "\"preferred\" must be \"a\", \"b\", 0 or 1" : "missing \"preferred\"");
    return -1;
}

static bool s_is_key(const char *key, const char *const *keys)
{
    for (; *keys; keys++)
        if (!strcmp(key, *keys))
            return true;
    return false;
}

static const char *const s_pref_keys[] = {"transcript_a", "transcript_b", "preferred", "seat_a",
                                          "seat_b",       "game",         "weight",    NULL};
static const char *const s_outcome_keys[] = {"transcript", "label", "seat", "game", "weight", NULL};
/* Keys that tell the two kinds apart (game and weight belong to both). */
static const char *const s_pref_only[] = {"transcript_a", "transcript_b", "preferred",
                                          "seat_a",       "seat_b",       NULL};
static const char *const s_outcome_only[] = {"transcript", "label", "seat", NULL};

/*
 * Fills *l from one parsed line. The label's strings point into doc, which
 * must outlive it. Returns 0, or -1 with the reason in why.
 */
static int s_parse_label(json_t *doc, label_t *l, char *why, size_t why_len)
{
    if (!json_is_object(doc)) {
        snprintf(why, why_len, "not a JSON object");
        return -1;
    }
    bool pref = false, outcome = false;
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        pref |= s_is_key(key, s_pref_only);
        outcome |= s_is_key(key, s_outcome_only);
    }
    if (pref == outcome) {
        snprintf(why, why_len, "%s",
                 pref ? "mixes preference keys (transcript_a, transcript_b, preferred) with "
                        "outcome keys (transcript, label)"
                      : "neither a preference (transcript_a, transcript_b, preferred) nor an "
                        "outcome (transcript, label)");
        return -1;
    }
    const char *const *keys = pref ? s_pref_keys : s_outcome_keys;
    json_object_foreach(doc, key, v)
    {
        if (!s_is_key(key, keys)) {
            char shown[48];
            snprintf(why, why_len, "unknown key \"%s\" in %s",
                     s_printable(key, shown, sizeof shown), pref ? "a preference" : "an outcome");
            return -1;
        }
    }

    *l = (label_t){.is_pref = pref};
    const char *game = "";
    if (s_string(doc, "game", MAX_GAME, false, &game, why, why_len) < 0)
        return -1;
    float weight = 0;
    /* FLT_MAX: the weight travels as a float. */
    if (s_number(doc, "weight", 0, FLT_MAX, false, &weight, why, why_len) < 0)
        return -1;
    for (int i = 0; i < 2; i++) {
        agora__v1__score_item__init(&l->item[i]);
        l->item[i].game = (char *)game;
    }
    const char *ta = NULL, *tb = NULL;
    if (!pref) {
        agora__v1__outcome__init(&l->outcome);
        l->outcome.item = &l->item[0];
        l->outcome.weight = weight;
        if (s_string(doc, "transcript", MAX_TRANSCRIPT, true, &ta, why, why_len) < 0 ||
            s_number(doc, "label", 0, 1, true, &l->outcome.label, why, why_len) < 0 ||
            s_seat(doc, "seat", &l->item[0].seat, why, why_len) < 0)
            return -1;
        l->item[0].transcript = (char *)ta;
        return 0;
    }
    agora__v1__preference__init(&l->pref);
    l->pref.a = &l->item[0];
    l->pref.b = &l->item[1];
    l->pref.weight = weight;
    if (s_string(doc, "transcript_a", MAX_TRANSCRIPT, true, &ta, why, why_len) < 0 ||
        s_string(doc, "transcript_b", MAX_TRANSCRIPT, true, &tb, why, why_len) < 0 ||
        s_preferred(doc, &l->pref.preferred, why, why_len) < 0 ||
        s_seat(doc, "seat_a", &l->item[0].seat, why, why_len) < 0 ||
        s_seat(doc, "seat_b", &l->item[1].seat, why, why_len) < 0)
        return -1;
    l->item[0].transcript = (char *)ta;
    l->item[1].transcript = (char *)tb;
    return 0;
}

/* Points the label's message at its own items again, after a copy of the struct. */
static void s_label_link(label_t *l)
{
    l->pref.a = &l->item[0];
    l->pref.b = &l->item[1];
    l->outcome.item = &l->item[0];
}

/* Bytes the label adds to a LabelRequest: tag, length prefix, body. */
static size_t s_label_size(const label_t *l)
{
    size_t body = l->is_pref ? protobuf_c_message_get_packed_size(&l->pref.base)
                             : protobuf_c_message_get_packed_size(&l->outcome.base);
    return 1 + 5 + body;
}

/* ---- the batch in flight ---- */

/* Labels of one request; their strings point into the parsed lines kept in docs. */
typedef struct batch {
    size_t n_prefs, n_outcomes;
    size_t bytes;
    size_t first_line, last_line;
    json_t *docs[MAX_BATCH];
    Agora__V1__ScoreItem items[MAX_BATCH][2];
    Agora__V1__Preference prefs[MAX_BATCH];
    Agora__V1__Preference *pref_ptrs[MAX_BATCH];
    Agora__V1__Outcome outcomes[MAX_BATCH];
    Agora__V1__Outcome *outcome_ptrs[MAX_BATCH];
} batch_t;

static size_t s_batch_count(const batch_t *b)
{
    return b->n_prefs + b->n_outcomes;
}

/* Takes over doc (the line l's strings point into). */
static void s_batch_add(batch_t *b, const label_t *l, json_t *doc, size_t lineno)
{
    size_t i = s_batch_count(b);
    if (i == 0)
        b->first_line = lineno;
    b->last_line = lineno;
    b->docs[i] = doc;
    b->items[i][0] = l->item[0];
    b->items[i][1] = l->item[1];
    b->bytes += s_label_size(l);
    if (l->is_pref) {
        Agora__V1__Preference *p = &b->prefs[b->n_prefs];
        *p = l->pref;
        p->a = &b->items[i][0];
        p->b = &b->items[i][1];
        b->pref_ptrs[b->n_prefs++] = p;
    } else {
        Agora__V1__Outcome *o = &b->outcomes[b->n_outcomes];
        *o = l->outcome;
        o->item = &b->items[i][0];
        b->outcome_ptrs[b->n_outcomes++] = o;
    }
}

static void s_batch_clear(batch_t *b)
{
    for (size_t i = 0; i < s_batch_count(b); i++)
        json_decref(b->docs[i]);
    b->n_prefs = b->n_outcomes = 0;
    b->bytes = 0;
}

/* ---- the run ---- */

typedef struct app {
    uv_loop_t loop;
    void *zctx;
    ag_rpc_client_t *client;
    uv_timer_t backoff;
    const char *endpoint;
    const char *model;
    const char *stats_model; /* NULL: no Stats */
    const char *input_name;
    reader_t *reader; /* NULL: no file */
    char *line;
    size_t batch_max;
    int timeout_ms, attempts;
    uint64_t max_wait_ms;
    uint64_t waited_ms;  /* resending the current batch after OVERLOADED */
    ag_backoff_t resend; /* its pauses */
    ag_rng_t jitter;

    /* a valid label that did not fit the previous request */
    json_t *held_doc;
    label_t held;
    size_t held_line;

    batch_t *batch;
    bool batch_counted; /* its labels are in `sent` already (a resend after OVERLOADED) */
    uint64_t run_id;    /* random, in every batch id of this run */
    size_t batches;     /* batches formed so far */
    char batch_id[64];  /* the current batch's */
    size_t lineno;
    uint64_t malformed, sent, accepted, rejected, duplicates;
    int exit_code;
    bool finished;
} app_t;

static void s_pump(app_t *app);

static void s_finish(app_t *app, int exit_code)
{
    if (exit_code > app->exit_code)
        app->exit_code = exit_code;
    app->finished = true;
    uv_stop(&app->loop);
}

static void s_report(app_t *app, size_t lineno, const char *why)
{
    app->malformed++;
    if (app->malformed <= MAX_REPORTS)
        fprintf(stderr, "%s:%zu: %s; skipped\n", app->input_name, lineno, why);
    if (app->malformed == MAX_REPORTS)
        fprintf(stderr, "%s: further malformed lines are counted but not shown\n", app->input_name);
}

/*
 * Reads lines until the batch is full (by count or by bytes) or the input
 * ends. Returns 0, or -1 after a read error.
 */
static int s_fill(app_t *app)
{
    batch_t *b = app->batch;
    if (app->held_doc) {
        s_batch_add(b, &app->held, app->held_doc, app->held_line);
        app->held_doc = NULL;
    }
    while (app->reader && s_batch_count(b) < app->batch_max) {
        size_t len, total;
        int rc = s_read_line(app->reader, app->line, MAX_LINE, &len, &total);
        if (rc < 0) {
            ag_error("label", "%s: read error", app->input_name);
            return -1;
        }
        if (rc == 0) {
            app->reader = NULL;
            break;
        }
        size_t lineno = ++app->lineno;
        char why[256];
        if (total > MAX_LINE) {
            snprintf(why, sizeof why, "line is %zu bytes, longer than any valid label can be (%d)",
                     total, MAX_LINE);
            s_report(app, lineno, why);
            continue;
        }
        size_t blank = 0;
        while (blank < len &&
               (app->line[blank] == ' ' || app->line[blank] == '\t' || app->line[blank] == '\r'))
            blank++;
        if (blank == len)
            continue; /* blank lines separate nothing and are not labels */
        if (memchr(app->line, '\0', len)) {
            s_report(app, lineno, "contains a NUL byte");
            continue;
        }
        json_error_t jerr;
        json_t *doc = json_loadb(app->line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
        if (!doc) {
            char shown[sizeof jerr.text];
            snprintf(why, sizeof why, "not valid JSON: %s (column %d)",
                     s_printable(jerr.text, shown, sizeof shown), jerr.column);
            s_report(app, lineno, why);
            continue;
        }
        label_t l;
        if (s_parse_label(doc, &l, why, sizeof why) < 0) {
            s_report(app, lineno, why);
            json_decref(doc);
            continue;
        }
        if (s_batch_count(b) > 0 && b->bytes + s_label_size(&l) > MAX_MESSAGE - ENVELOPE_ROOM) {
            app->held = l;
            s_label_link(&app->held);
            app->held_doc = doc;
            app->held_line = lineno;
            break;
        }
        s_batch_add(b, &l, doc, lineno);
    }
    return 0;
}

static void s_label_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                         size_t extra_len);
static void s_stats_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                         size_t extra_len);

static void s_send_batch(app_t *app)
{
    batch_t *b = app->batch;
    Agora__V1__LabelRequest body = AGORA__V1__LABEL_REQUEST__INIT;
    body.model = (char *)app->model;
    body.n_preferences = b->n_prefs;
    body.preferences = b->pref_ptrs;
    body.n_outcomes = b->n_outcomes;
    body.outcomes = b->outcome_ptrs;
    body.batch_id = app->batch_id;
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_LABEL;
    req.label = &body;
    if (!app->batch_counted) {
        app->sent += s_batch_count(b);
        app->batch_counted = true;
    }
    int rc = ag_rpc_call(app->client, &req.base, s_label_done, app);
    if (rc < 0) {
        ag_error("label", "cannot send to %s: %s", app->endpoint, strerror(-rc));
        s_finish(app, EXIT_FAILED);
    }
}

static void s_send_stats(app_t *app)
{
    Agora__V1__RewardStatsRequest body = AGORA__V1__REWARD_STATS_REQUEST__INIT;
    body.model = strcmp(app->stats_model, "all") ? (char *)app->stats_model : "";
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_STATS;
    req.stats = &body;
    int rc = ag_rpc_call(app->client, &req.base, s_stats_done, app);
    if (rc < 0) {
        ag_error("label", "cannot send to %s: %s", app->endpoint, strerror(-rc));
        s_finish(app, EXIT_FAILED);
    }
}

/* The next request: a batch of labels while the file lasts, then the Stats, then the end. */
static void s_pump(app_t *app)
{
    if (s_fill(app) < 0) {
        s_finish(app, EXIT_FAILED);
        return;
    }
    if (s_batch_count(app->batch) > 0) {
        snprintf(app->batch_id, sizeof app->batch_id, "label/%016" PRIx64 "/%zu", app->run_id,
                 app->batches++);
        app->batch_counted = false;
        app->waited_ms = 0;
        app->resend = ag_backoff_make(RESEND_FIRST_MS, RESEND_MAX_MS);
        s_send_batch(app);
    } else if (app->stats_model) {
        s_send_stats(app);
        app->stats_model = NULL;
    } else {
        s_finish(app, 0);
    }
}

static void s_on_backoff(uv_timer_t *t)
{
    s_send_batch(t->data);
}

/* Says why a reply is not the expected body; returns true if it is an error worth stopping on. */
static bool s_reply_failed(app_t *app, int status, const Agora__V1__RewardReply *reply,
                           Agora__V1__RewardReply__BodyCase want, const char *what)
{
    if (status == -ETIMEDOUT) {
        ag_error("label", "no reply from %s to %s after %d attempts of %d ms", app->endpoint, what,
                 app->attempts, app->timeout_ms);
        return true;
    }
    if (status < 0) {
        ag_error("label", "%s to %s failed: %s", what, app->endpoint, strerror(-status));
        return true;
    }
    if (reply->body_case == AGORA__V1__REWARD_REPLY__BODY_ERROR) {
        const Agora__V1__Error *e = reply->error;
        ag_error("label", "%s refused by %s: %s: %s", what, app->endpoint,
                 ag_error_name(e ? e->code : 0), e && e->message ? e->message : "");
        return true;
    }
    if (reply->body_case != want) {
        ag_error("label", "%s: %s answered with reply body %d", what, app->endpoint,
                 (int)reply->body_case);
        return true;
    }
    return false;
}

static void s_label_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                         size_t extra_len)
{
    app_t *app = arg;
    if (app->finished)
        return; /* cancelled while shutting down */
    const Agora__V1__RewardReply *reply = (const Agora__V1__RewardReply *)msg;
    batch_t *b = app->batch;
    if (status == 0 && reply->body_case == AGORA__V1__REWARD_REPLY__BODY_ERROR && reply->error &&
        reply->error->code == AGORA__V1__ERROR_CODE__ERROR_OVERLOADED) {
        const uint64_t pause = ag_backoff_next_ms(&app->resend, &app->jitter);
        if (app->waited_ms + pause > app->max_wait_ms) {
            ag_error("label", "%s still OVERLOADED after %.1f s; giving up at lines %zu-%zu",
                     app->endpoint, (double)app->waited_ms / 1000.0, b->first_line, b->last_line);
            s_finish(app, EXIT_FAILED);
            return;
        }
        ag_debug("label", "server overloaded; resending in %llu ms", (unsigned long long)pause);
        uv_timer_start(&app->backoff, s_on_backoff, pause, 0);
        app->waited_ms += pause;
        return;
    }
    char what[96];
    snprintf(what, sizeof what, "the labels of lines %zu-%zu", b->first_line, b->last_line);
    if (s_reply_failed(app, status, reply, AGORA__V1__REWARD_REPLY__BODY_LABEL, what)) {
        s_finish(app, EXIT_FAILED);
        return;
    }
    const Agora__V1__LabelReply *lr = reply->label;
    uint64_t n = s_batch_count(b);
    uint64_t acc = lr ? lr->accepted : 0, rej = lr ? lr->rejected : 0;
    if (acc + rej != n)
        ag_warn("label", "%s: the server counted %llu accepted + %llu rejected of %llu sent", what,
                (unsigned long long)acc, (unsigned long long)rej, (unsigned long long)n);
    app->accepted += acc;
    app->rejected += rej;
    if (lr && lr->duplicate) {
        app->duplicates++;
        ag_info("label", "%s: the server had them already (a retry after a lost reply)", what);
    }
    s_batch_clear(b);
    s_pump(app);
}

static json_t *s_model_json(const Agora__V1__RewardModelStats *m)
{
    json_t *metrics = json_object();
    for (size_t i = 0; i < m->n_metrics; i++) {
        const Agora__V1__Metric *x = m->metrics[i];
        if (!x || !x->name)
            continue;
        json_t *value = json_real(x->value); /* NULL for NaN and infinities */
        json_object_set_new(metrics, x->name, value ? value : json_null());
    }
    return json_pack("{s:s,s:I,s:I,s:I,s:o}", "name", m->name ? m->name : "", "version",
                     (json_int_t)m->version, "labels", (json_int_t)m->labels, "updates",
                     (json_int_t)m->updates, "metrics", metrics);
}

static void s_stats_done(void *arg, int status, const ProtobufCMessage *msg, const uint8_t *extra,
                         size_t extra_len)
{
    app_t *app = arg;
    if (app->finished)
        return;
    const Agora__V1__RewardReply *reply = (const Agora__V1__RewardReply *)msg;
    if (s_reply_failed(app, status, reply, AGORA__V1__REWARD_REPLY__BODY_STATS, "Stats")) {
        s_finish(app, EXIT_FAILED);
        return;
    }
    const Agora__V1__RewardStatsReply *sr = reply->stats;
    for (size_t i = 0; sr && i < sr->n_models; i++) {
        json_t *j = sr->models[i] ? s_model_json(sr->models[i]) : NULL;
        char *text = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6)) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(j);
    }
    fflush(stdout);
    s_pump(app);
}

/* Reads the options; returns 0, or 2 after saying what is wrong. */
static int s_configure(app_t *app, ag_config_t *cfg)
{
    label_opts_t o;
    if (ag_config_apply(cfg, &o) < 0)
        return EXIT_FAILED;
    app->batch_max = (size_t)o.batch;
    app->timeout_ms = (int)o.timeout_ms;
    app->attempts = (int)o.attempts;
    app->max_wait_ms = (uint64_t)o.max_wait_s * 1000;
    app->endpoint = o.reward;
    app->model = o.model;
    app->stats_model = *o.stats ? o.stats : NULL;
    if (!*app->endpoint) {
        fprintf(stderr, "agora-label: --reward ENDPOINT is required (see --help)\n");
        return EXIT_FAILED;
    }
    if (ag_config_positional_count(cfg) == 0 && !app->stats_model) {
        fprintf(stderr, "agora-label: give a FILE (- for stdin) or --stats (see --help)\n");
        return EXIT_FAILED;
    }
    return 0;
}

int main(int argc, char **argv)
{
    ag_config_t *cfg = ag_config_create(
        "agora-label", "[options] FILE.jsonl|- --reward ENDPOINT",
        "Posts labels to a reward server (agora-reward) as LabelRequests. Each line of "
        "FILE (- = stdin) is a preference {\"transcript_a\", \"transcript_b\", \"preferred\": "
        "\"a\"|\"b\"|0|1, optional \"seat_a\", \"seat_b\", \"game\", \"weight\"} or an "
        "outcome {\"transcript\", \"label\": 0..1, optional \"seat\", \"game\", \"weight\"}. "
        "Malformed lines are reported and skipped. Prints one summary line; exits 0 when "
        "every valid label was accepted, 1 when lines were malformed or labels rejected, 2 "
        "on a usage or connection failure.",
        s_options, sizeof s_options / sizeof s_options[0], 1);
    if (!cfg)
        return EXIT_FAILED;
    int rc = ag_config_parse_args(cfg, argc, argv);
    if (rc != 0) {
        ag_config_destroy(&cfg);
        return rc > 0 ? 0 : EXIT_FAILED;
    }
    app_t app = {0};
    app.run_id = ag_random_u64();
    ag_rng_seed(&app.jitter, app.run_id);
    rc = s_configure(&app, cfg);
    if (rc != 0) {
        ag_config_destroy(&cfg);
        return rc;
    }

    FILE *in = NULL;
    const char *path = ag_config_positional_count(cfg) ? ag_config_positional(cfg, 0) : NULL;
    if (path) {
        in = strcmp(path, "-") ? fopen(path, "rb") : stdin;
        app.input_name = strcmp(path, "-") ? path : "<stdin>";
        if (!in) {
            fprintf(stderr, "agora-label: %s: %s\n", path, strerror(errno));
            ag_config_destroy(&cfg);
            return EXIT_FAILED;
        }
    }
    app.reader = in ? calloc(1, sizeof *app.reader) : NULL;
    reader_t *reader = app.reader;
    app.line = malloc(MAX_LINE);
    app.batch = calloc(1, sizeof *app.batch);
    if ((in && !reader) || !app.line || !app.batch) {
        fprintf(stderr, "agora-label: out of memory\n");
        rc = EXIT_FAILED;
        goto done;
    }
    if (reader)
        reader->f = in;

    uv_loop_init(&app.loop);
    uv_timer_init(&app.loop, &app.backoff);
    app.backoff.data = &app;
    app.zctx = zmq_ctx_new();
    ag_rpc_client_opts_t copts = {
        .timeout_ms = app.timeout_ms,
        .attempts = app.attempts,
        .max_reply = MAX_MESSAGE,
    };
    app.client = ag_rpc_client_create(&app.loop, app.zctx, app.endpoint,
                                      &agora__v1__reward_reply__descriptor, &copts);
    if (!app.client) {
        fprintf(stderr, "agora-label: cannot connect to '%s'\n", app.endpoint);
        app.exit_code = EXIT_FAILED;
    } else {
        /* When s_pump already finished, uv_run returns at once (and clears the stop). */
        s_pump(&app);
        uv_run(&app.loop, UV_RUN_DEFAULT);
    }
    /* Whatever stopped the run, release the socket and timer and let libuv close them. */
    ag_rpc_client_destroy(&app.client);
    uv_close((uv_handle_t *)&app.backoff, NULL);
    uv_run(&app.loop, UV_RUN_DEFAULT);
    uv_loop_close(&app.loop);
    zmq_ctx_term(app.zctx);

    if (path)
        printf("lines=%zu malformed=%llu sent=%llu accepted=%llu rejected=%llu duplicate=%llu\n",
               app.lineno, (unsigned long long)app.malformed, (unsigned long long)app.sent,
               (unsigned long long)app.accepted, (unsigned long long)app.rejected,
               (unsigned long long)app.duplicates);
    rc = app.exit_code;
    if (rc == 0 && (app.malformed > 0 || app.rejected > 0 || app.accepted < app.sent))
        rc = EXIT_SOME_BAD;

done:
    json_decref(app.held_doc);
    if (app.batch)
        s_batch_clear(app.batch);
    free(app.batch);
    free(app.line);
    free(reader);
    if (in && in != stdin)
        fclose(in);
    ag_config_destroy(&cfg);
    return rc;
}
