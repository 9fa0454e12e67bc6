/*
 * reward_peer - an agora-reward process and a raw protocol client for tests
 * (see reward_peer.h).
 */
#include "reward_peer.h"

#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "harness.h"

extern char **environ;

enum { MAX_ARGS = 64, START_ATTEMPTS = 5, RESTART_PAUSE_MS = 200 };

/* Asks Stats until the server answers, dies, or the deadline passes. */
static int s_wait_stats(ag_server_proc_t *p, int64_t deadline)
{
    reward_peer_t c;
    if (reward_peer_open(&c, p->endpoint) < 0)
        return -ENOMEM;
    int rc = -ETIMEDOUT;
    while (ag_now_ms() < deadline) {
        if (!ag_server_proc_alive(p)) {
            rc = -ECHILD;
            break;
        }
        Agora__V1__RewardReply *r = reward_peer_stats(&c, "", 200);
        if (r) {
            rc = r->body_case == AGORA__V1__REWARD_REPLY__BODY_STATS ? 0 : -EPROTO;
            agora__v1__reward_reply__free_unpacked(r, NULL);
            break;
        }
    }
    reward_peer_close(&c);
    return rc;
}

int reward_proc_start_at(ag_server_proc_t *p, const char *exe, const char *endpoint,
                         const char *const *extra, int timeout_ms)
{
    memset(p, 0, sizeof *p);
    const bool fixed = endpoint && endpoint[0];
    const int64_t deadline = ag_now_ms() + timeout_ms;
    int rc = -ETIMEDOUT;
    for (int attempt = 0; attempt < START_ATTEMPTS && ag_now_ms() < deadline; attempt++) {
        if (fixed && attempt)
            harness_sleep_ms(RESTART_PAUSE_MS);
        if (fixed)
            snprintf(p->endpoint, sizeof p->endpoint, "%s", endpoint);
        else if ((rc = harness_free_endpoint(p->endpoint, sizeof p->endpoint)) < 0)
            break;
        char *argv[MAX_ARGS + 4] = {(char *)exe, "--bind", p->endpoint};
        size_t n = 3;
        for (size_t i = 0; extra && extra[i] && n < MAX_ARGS + 3; i++)
            argv[n++] = (char *)extra[i];
        argv[n] = NULL;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, STDERR_FILENO, STDOUT_FILENO);
        pid_t pid;
        int e = posix_spawn(&pid, exe, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (e) {
            fprintf(stderr, "reward_peer: cannot start %s: %s\n", exe, strerror(e));
            return -e;
        }
        p->pid = pid;
        p->reaped = false;
        rc = s_wait_stats(p, deadline);
        if (rc != -ECHILD)
            break;
        fprintf(stderr, "reward_peer: %s on %s exited during start-up (status 0x%x)\n", exe,
                p->endpoint, p->wait_status);
    }
    if (rc == 0)
        return 0;
    fprintf(stderr, "reward_peer: %s did not answer Stats on %s within %d ms: %s\n", exe,
            p->endpoint, timeout_ms, strerror(-rc));
    ag_server_proc_stop(p, 1000);
    return rc;
}

int reward_proc_start(ag_server_proc_t *p, const char *exe, const char *const *extra,
                      int timeout_ms)
{
    return reward_proc_start_at(p, exe, NULL, extra, timeout_ms);
}

int reward_peer_open(reward_peer_t *c, const char *endpoint)
{
    memset(c, 0, sizeof *c);
    c->zctx = zmq_ctx_new();
    c->sock = c->zctx ? zmq_socket(c->zctx, ZMQ_DEALER) : NULL;
    if (!c->sock) {
        reward_peer_close(c);
        return -ENOMEM;
    }
    int zero = 0;
    int64_t max = 16 << 20;
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &max, sizeof max);
    c->next_id = ((uint64_t)ag_now_ms() << 20) | 1;
    if (zmq_connect(c->sock, endpoint) < 0) {
        reward_peer_close(c);
        return -EINVAL;
    }
    return 0;
}

void reward_peer_close(reward_peer_t *c)
{
    if (c->sock)
        zmq_close(c->sock);
    if (c->zctx)
        zmq_ctx_term(c->zctx);
    c->sock = c->zctx = NULL;
}

uint64_t reward_peer_id(reward_peer_t *c)
{
    return c->next_id++;
}

int reward_peer_send(reward_peer_t *c, const ag_env_frame_t *frames, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (zmq_send(c->sock, frames[i].data, frames[i].size, i + 1 < n ? ZMQ_SNDMORE : 0) < 0)
            return -errno;
    return 0;
}

int reward_peer_send_req(reward_peer_t *c, const Agora__V1__RewardRequest *req)
{
    size_t len = agora__v1__reward_request__get_packed_size(req);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
        return -ENOMEM;
    agora__v1__reward_request__pack(req, buf);
    const ag_env_frame_t f = {buf, len};
    int rc = reward_peer_send(c, &f, 1);
    free(buf);
    return rc;
}

int reward_peer_recv(reward_peer_t *c, int timeout_ms, Agora__V1__RewardReply **reply,
                     bool *delimited)
{
    *reply = NULL;
    zmq_pollitem_t it = {.socket = c->sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return -ETIMEDOUT;
    zmq_msg_t f[3];
    int n = 0, total = 0, more = 1;
    while (more) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, c->sock, 0) < 0) {
            zmq_msg_close(&m);
            total = -1;
            break;
        }
        more = zmq_msg_more(&m);
        if (n < 3) {
            zmq_msg_init(&f[n]);
            zmq_msg_move(&f[n++], &m);
        }
        zmq_msg_close(&m);
        total++;
    }
    int rc = -EPROTO;
    const bool delim = total == 2 && zmq_msg_size(&f[0]) == 0;
    if (total == 1 || delim) {
        zmq_msg_t *p = &f[total - 1];
        *reply = agora__v1__reward_reply__unpack(NULL, zmq_msg_size(p), zmq_msg_data(p));
        rc = *reply ? 0 : -EPROTO;
    }
    if (delimited)
        *delimited = delim;
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    return rc;
}

Agora__V1__RewardReply *reward_peer_call(reward_peer_t *c, Agora__V1__RewardRequest *req,
                                         int timeout_ms)
{
    req->protocol_version = 1;
    req->request_id = reward_peer_id(c);
    if (reward_peer_send_req(c, req) < 0)
        return NULL;
    const int64_t deadline = ag_now_ms() + timeout_ms;
    for (;;) {
        int64_t left = deadline - ag_now_ms();
        Agora__V1__RewardReply *r = NULL;
        if (left <= 0 || reward_peer_recv(c, (int)left, &r, NULL) == -ETIMEDOUT)
            return NULL;
        if (r && r->request_id == req->request_id)
            return r;
        if (r)
            agora__v1__reward_reply__free_unpacked(r, NULL);
    }
}

Agora__V1__RewardReply *reward_peer_stats(reward_peer_t *c, const char *model, int timeout_ms)
{
    Agora__V1__RewardStatsRequest st = AGORA__V1__REWARD_STATS_REQUEST__INIT;
    st.model = (char *)model;
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_STATS;
    req.stats = &st;
    return reward_peer_call(c, &req, timeout_ms);
}

Agora__V1__RewardReply *reward_peer_score(reward_peer_t *c, const char *model,
                                          const char *const *transcripts, size_t n, int timeout_ms)
{
    Agora__V1__ScoreItem *items = calloc(n ? n : 1, sizeof *items);
    Agora__V1__ScoreItem **ip = calloc(n ? n : 1, sizeof *ip);
    Agora__V1__RewardReply *r = NULL;
    if (items && ip) {
        for (size_t i = 0; i < n; i++) {
            agora__v1__score_item__init(&items[i]);
            items[i].transcript = (char *)transcripts[i];
            items[i].game = "debate";
            ip[i] = &items[i];
        }
        Agora__V1__ScoreRequest sr = AGORA__V1__SCORE_REQUEST__INIT;
        sr.model = (char *)model;
        sr.n_items = n;
        sr.items = ip;
        Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
        req.body_case = AGORA__V1__REWARD_REQUEST__BODY_SCORE;
        req.score = &sr;
        r = reward_peer_call(c, &req, timeout_ms);
    }
    free(items);
    free(ip);
    return r;
}

Agora__V1__RewardReply *reward_peer_label(reward_peer_t *c, const char *model,
                                          Agora__V1__Preference **prefs, size_t n_prefs,
                                          Agora__V1__Outcome **outs, size_t n_outs, int timeout_ms)
{
    Agora__V1__LabelRequest lr = AGORA__V1__LABEL_REQUEST__INIT;
    lr.model = (char *)model;
    lr.n_preferences = n_prefs;
    lr.preferences = prefs;
    lr.n_outcomes = n_outs;
    lr.outcomes = outs;
    Agora__V1__RewardRequest req = AGORA__V1__REWARD_REQUEST__INIT;
    req.body_case = AGORA__V1__REWARD_REQUEST__BODY_LABEL;
    req.label = &lr;
    return reward_peer_call(c, &req, timeout_ms);
}

int reward_peer_scores(reward_peer_t *c, const char *model, const char *const *transcripts,
                       size_t n, int timeout_ms, float *out)
{
    Agora__V1__RewardReply *r = reward_peer_score(c, model, transcripts, n, timeout_ms);
    if (!r) {
        fprintf(stderr, "reward_peer: no Score reply within %d ms\n", timeout_ms);
        return -ETIMEDOUT;
    }
    int rc = 0;
    if (r->body_case != AGORA__V1__REWARD_REPLY__BODY_SCORE || r->score->n_scores != n) {
        fprintf(stderr, "reward_peer: Score of %zu items: reply body %d, error %d (%s)\n", n,
                r->body_case, reward_reply_error(r),
                r->error && r->error->message ? r->error->message : "");
        rc = -EPROTO;
    } else {
        memcpy(out, r->score->scores, n * sizeof *out);
    }
    agora__v1__reward_reply__free_unpacked(r, NULL);
    return rc;
}

int reward_reply_error(const Agora__V1__RewardReply *r)
{
    if (r->body_case != AGORA__V1__REWARD_REPLY__BODY_ERROR)
        return 0;
    return r->error ? (int)r->error->code : -1;
}

Agora__V1__RewardModelStats *reward_model_stats(const Agora__V1__RewardReply *r, const char *name)
{
    if (r->body_case != AGORA__V1__REWARD_REPLY__BODY_STATS || !r->stats)
        return NULL;
    for (size_t i = 0; i < r->stats->n_models; i++)
        if (!strcmp(r->stats->models[i]->name, name))
            return r->stats->models[i];
    return NULL;
}

double reward_metric(const Agora__V1__RewardModelStats *m, const char *name, double def)
{
    for (size_t i = 0; i < m->n_metrics; i++)
        if (!strcmp(m->metrics[i]->name, name))
            return m->metrics[i]->value;
    return def;
}
