/*
 * test_learner.c - agora-learner as a service, over the real protocol: a
 * real learner process on loopback (tiny model, no warm start) fed with
 * pre-built trajectories by a DEALER, inspected through its control socket,
 * its weights PUB and its output files.
 *
 *   queue.bin:  its encoding, and damaged images refused (in process);
 *   protocol:   bad frames, garbage, version mismatch, weights snapshot with
 *               checksum, league, status, a PUB update per version;
 *   resend:     a resent trajectory is acknowledged "duplicate" and trained once;
 *   stale:      too old (or future) versions are acknowledged "stale"; one
 *               that turns stale while queued is dropped at batch time;
 *   resume:     4 updates straight = 2 updates, SIGTERM, --resume, 2 updates
 *               (bit-identical weights); trajectories acknowledged but not yet
 *               trained survive SIGTERM + --resume (queue.bin) and are trained
 *               as in a straight run; a damaged, missing or mismatched
 *               queue.bin is a warning and an empty queue; a queue longer than
 *               the resumed learner's is cut with a warning.
 *
 * Usage: test_learner PATH/TO/agora-learner
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <fcntl.h>
#include <zmq.h>

#include "clock.h"
#include "ckpt.h"
#include "harness.h"
#include "control.pb-c.h"
#include "crc32.h"
#include "model.h"
#include "ppo.h"
#include "seq.h"
#include "state.h"
#include "traj.h"
#include "trajectory.pb-c.h"
#include "weights.pb-c.h"

static const char *s_exe;
/* Every learner started, so a failed test does not leave one running. */
static pid_t s_children[16];
static const char *s_min_actors = "1";  /* --min-actors of the next learner started */
static const char *s_max_pending = "8"; /* --max-pending of the next learner started */
static const char *s_log = NULL;        /* if set, the next learner's stderr goes there */
static size_t s_n_children;

typedef struct learner {
    pid_t pid;
    char dir[256];
    char traj[64], weights[64], control[64];
    void *zctx;
    void *dealer; /* trajectories */
    void *ctl;    /* control */
    uint64_t rid;
} learner_t;

static int s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static void *s_connect(learner_t *l, int type, const char *ep)
{
    void *s = zmq_socket(l->zctx, type);
    int zero = 0, max = 1 << 30;
    int64_t maxmsg = max;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (type == ZMQ_SUB)
        zmq_setsockopt(s, ZMQ_SUBSCRIBE, "agora.v1.weights", 16);
    assert_int_equal(zmq_connect(s, ep), 0);
    return s;
}

/* Receives one multipart message of up to 4 frames within timeout_ms;
 * returns the number of frames (0 on timeout). */
static int s_recv(void *sock, zmq_msg_t *frames, int max, int timeout_ms)
{
    zmq_pollitem_t it = {.socket = sock, .events = ZMQ_POLLIN};
    if (zmq_poll(&it, 1, timeout_ms) <= 0)
        return 0;
    int n = 0, more = 1;
    while (more && n < max) {
        zmq_msg_init(&frames[n]);
        assert_true(zmq_msg_recv(&frames[n], sock, 0) >= 0);
        more = zmq_msg_more(&frames[n]);
        n++;
    }
    assert_false(more);
    return n;
}

static void s_close_frames(zmq_msg_t *frames, int n)
{
    for (int i = 0; i < n; i++)
        zmq_msg_close(&frames[i]);
}

static void s_start(learner_t *l, const char *dir, const char *resume)
{
    char p1[16], p2[16], p3[16];
    /* A port is free again once probed: the three must still differ. */
    int port[3];
    for (int i = 0; i < 3;) {
        port[i] = s_free_port();
        int dup = 0;
        for (int k = 0; k < i; k++)
            dup |= port[k] == port[i];
        if (!dup)
            i++;
    }
    snprintf(p1, sizeof p1, "%d", port[0]);
    snprintf(p2, sizeof p2, "%d", port[1]);
    snprintf(p3, sizeof p3, "%d", port[2]);
    snprintf(l->traj, sizeof l->traj, "tcp://127.0.0.1:%s", p1);
    snprintf(l->weights, sizeof l->weights, "tcp://127.0.0.1:%s", p2);
    snprintf(l->control, sizeof l->control, "tcp://127.0.0.1:%s", p3);
    snprintf(l->dir, sizeof l->dir, "%s", dir);
    l->pid = fork();
    assert_true(l->pid >= 0);
    if (l->pid > 0 && s_n_children < sizeof s_children / sizeof s_children[0])
        s_children[s_n_children++] = l->pid;
    if (l->pid == 0) {
        const char *argv[] = {s_exe,
                              "--trajectories",
                              l->traj,
                              "--weights",
                              l->weights,
                              "--control",
                              l->control,
                              "--out",
                              dir,
                              "--demos",
                              "0",
                              "--env",
                              "",
                              "--model.d_model",
                              "16",
                              "--model.n_layers",
                              "1",
                              "--model.n_heads",
                              "2",
                              "--model.ctx",
                              "32",
                              "--model.mlp_ratio",
                              "2",
                              "--threads",
                              "1",
                              "--batch",
                              "4",
                              "--ppo.minibatch",
                              "3",
                              "--max-staleness",
                              "3",
                              "--max-pending",
                              s_max_pending,
                              "--min-actors",
                              s_min_actors,
                              "--checkpoint-interval",
                              "0",
                              "--league-interval",
                              "2",
                              "--progress",
                              "off",
                              "--log.level",
                              "warn",
                              "--resume",
                              resume ? resume : "",
                              NULL};
        if (s_log) {
            int fd = open(s_log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd < 0 || dup2(fd, 2) < 0)
                _exit(126);
            close(fd);
        }
        execv(s_exe, (char *const *)argv);
        _exit(127);
    }
    l->zctx = zmq_ctx_new();
    l->dealer = s_connect(l, ZMQ_DEALER, l->traj);
    l->ctl = s_connect(l, ZMQ_DEALER, l->control);
}

/* Exit status after SIGTERM (the learner checkpoints first). */
static int s_stop(learner_t *l)
{
    zmq_close(l->dealer);
    zmq_close(l->ctl);
    zmq_ctx_term(l->zctx);
    kill(l->pid, SIGTERM);
    int status = 0;
    for (int i = 0; i < 300; i++) {
        if (waitpid(l->pid, &status, WNOHANG) == l->pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
        usleep(100 * 1000);
    }
    kill(l->pid, SIGKILL);
    waitpid(l->pid, &status, 0);
    return -1;
}

/* Sends a ControlRequest and returns the reply (free it) and the raw frame if any. */
static Agora__V1__ControlReply *s_control(learner_t *l, Agora__V1__ControlRequest *req,
                                          zmq_msg_t *raw, int *has_raw)
{
    req->protocol_version = 1;
    req->request_id = ++l->rid;
    uint8_t buf[256];
    size_t n = protobuf_c_message_pack(&req->base, buf);
    assert_int_equal(zmq_send(l->ctl, buf, n, 0), (int)n);
    zmq_msg_t f[3];
    int got;
    Agora__V1__ControlReply *rep;
    for (;;) { /* late answers to s_wait_ready's requests are skipped */
        got = s_recv(l->ctl, f, 3, 5000);
        assert_true(got >= 1);
        rep = agora__v1__control_reply__unpack(NULL, zmq_msg_size(&f[0]), zmq_msg_data(&f[0]));
        assert_non_null(rep);
        if (rep->request_id >= req->request_id)
            break;
        agora__v1__control_reply__free_unpacked(rep, NULL);
        s_close_frames(f, got);
    }
    assert_int_equal(rep->request_id, req->request_id);
    if (has_raw)
        *has_raw = got == 2;
    if (got == 2 && raw)
        *raw = f[1];
    else if (got == 2)
        zmq_msg_close(&f[1]);
    zmq_msg_close(&f[0]);
    return rep;
}

static Agora__V1__ControlReply *s_status(learner_t *l)
{
    Agora__V1__StatusRequest sr = AGORA__V1__STATUS_REQUEST__INIT;
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_STATUS;
    req.status = &sr;
    return s_control(l, &req, NULL, NULL);
}

static double s_metric(const Agora__V1__StatusReply *s, const char *name)
{
    for (size_t i = 0; i < s->n_metrics; i++)
        if (!strcmp(s->metrics[i]->name, name))
            return s->metrics[i]->value;
    return -1;
}

/* Waits until the learner answers Status in phase ppo (it has version 1). */
static void s_wait_ready(learner_t *l)
{
    double t0 = ag_now();
    zmq_pollitem_t it = {.socket = l->ctl, .events = ZMQ_POLLIN};
    while (ag_now() - t0 < 20) {
        Agora__V1__StatusRequest sr = AGORA__V1__STATUS_REQUEST__INIT;
        Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
        req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_STATUS;
        req.status = &sr;
        req.protocol_version = 1;
        req.request_id = ++l->rid;
        uint8_t buf[64];
        size_t n = protobuf_c_message_pack(&req.base, buf);
        zmq_send(l->ctl, buf, n, 0);
        /* Requests sent before the learner was up are all answered at once when it
         * binds: read every reply there is, any of them may say "ppo". */
        int ok = 0;
        for (int wait = 200; zmq_poll(&it, 1, wait) > 0; wait = 0) {
            zmq_msg_t f;
            zmq_msg_init(&f);
            zmq_msg_recv(&f, l->ctl, 0);
            Agora__V1__ControlReply *rep =
                agora__v1__control_reply__unpack(NULL, zmq_msg_size(&f), zmq_msg_data(&f));
            zmq_msg_close(&f);
            ok |= rep && rep->request_id <= l->rid && rep->status &&
                  !strcmp(rep->status->phase, "ppo");
            agora__v1__control_reply__free_unpacked(rep, NULL);
        }
        if (ok)
            return;
    }
    fail_msg("the learner did not come up");
}

static void s_wait_updates(learner_t *l, uint64_t updates)
{
    double t0 = ag_now();
    while (ag_now() - t0 < 30) {
        Agora__V1__ControlReply *rep = s_status(l);
        uint64_t u = rep->status->updates;
        agora__v1__control_reply__free_unpacked(rep, NULL);
        if (u >= updates) {
            assert_int_equal(u, updates);
            return;
        }
        usleep(50 * 1000);
    }
    fail_msg("no update %" PRIu64 " within 30 s", updates);
}

/* A two-seat debate-like trajectory, deterministic in (seq, variant). */
typedef struct built {
    ag_seq_t seat[2];
    uint32_t buf[2][64];
    Agora__V1__SeatTrajectory pb_seat[2];
    Agora__V1__SeatTrajectory *pb_seats[2];
    Agora__V1__TrajectoryId id;
    Agora__V1__Metric metric, *metrics[1];
    float returns[2];
    Agora__V1__Trajectory t;
} built_t;

static void s_build(built_t *b, const char *actor, uint64_t seq, uint64_t version, int bad)
{
    memset(b, 0, sizeof *b);
    float win = seq % 3 == 0 ? 1.0f : -1.0f;
    for (int p = 0; p < 2; p++) {
        ag_seq_t *s = &b->seat[p];
        ag_seq_init(s);
        ag_seq_begin(s);
        for (int turn = 0; turn < 2; turn++) {
            ag_seq_context(s, turn ? "\nch: " : "task: ", turn ? 5 : 6);
            int n = 2 + (int)((seq + (uint64_t)p + (uint64_t)turn) % 4);
            for (int k = 0; k < n; k++)
                ag_seq_generated(s, '0' + (int)((seq * 7 + (uint64_t)k * 3 + (uint64_t)p) % 10),
                                 -0.5f - 0.1f * (float)k, 0.0f);
            ag_seq_generated(s, AG_TOK_EOT, -0.2f, 0.0f);
            ag_seq_end_turn(s, version);
        }
        ag_seq_reward(s, p == 0 ? win : -win);
        ag_traj_seat_to_pb(s, (uint32_t)p, true, &b->pb_seat[p], b->buf[p]);
        b->pb_seats[p] = &b->pb_seat[p];
        b->returns[p] = p == 0 ? win : -win;
    }
    if (bad)
        b->buf[1][3] = 999; /* a token outside the vocabulary */
    agora__v1__trajectory_id__init(&b->id);
    b->id.actor_id = (char *)actor;
    b->id.run_id = 0xfeedULL;
    b->id.sequence = seq;
    agora__v1__metric__init(&b->metric);
    b->metric.name = (char *)"judge_accuracy";
    b->metric.value = win > 0 ? 1.0 : 0.0;
    b->metrics[0] = &b->metric;
    agora__v1__trajectory__init(&b->t);
    b->t.id = &b->id;
    b->t.game = (char *)"debate";
    b->t.seed = seq;
    b->t.n_seats = 2;
    b->t.seats = b->pb_seats;
    b->t.n_returns = 2;
    b->t.returns = b->returns;
    b->t.n_metrics = 1;
    b->t.metrics = b->metrics;
}

static void s_unbuild(built_t *b)
{
    ag_seq_finish(&b->seat[0]);
    ag_seq_finish(&b->seat[1]);
}

typedef struct ack {
    size_t accepted, duplicate, stale, rejected;
    uint64_t version;
} ack_t;

/* Submits n trajectories and returns the reply (an ack or an error). */
static Agora__V1__TrajectoryReply *s_submit_reply(learner_t *l, built_t *b, size_t n)
{
    Agora__V1__Trajectory *t[64];
    for (size_t i = 0; i < n; i++)
        t[i] = &b[i].t;
    Agora__V1__SubmitTrajectories sub = AGORA__V1__SUBMIT_TRAJECTORIES__INIT;
    sub.n_trajectories = n;
    sub.trajectories = t;
    Agora__V1__TrajectoryRequest req = AGORA__V1__TRAJECTORY_REQUEST__INIT;
    req.protocol_version = 1;
    req.request_id = ++l->rid;
    req.body_case = AGORA__V1__TRAJECTORY_REQUEST__BODY_SUBMIT;
    req.submit = &sub;
    size_t len = protobuf_c_message_get_packed_size(&req.base);
    uint8_t *buf = malloc(len);
    protobuf_c_message_pack(&req.base, buf);
    assert_int_equal(zmq_send(l->dealer, buf, len, 0), (int)len);
    free(buf);
    zmq_msg_t f[2];
    assert_int_equal(s_recv(l->dealer, f, 2, 5000), 1);
    Agora__V1__TrajectoryReply *rep =
        agora__v1__trajectory_reply__unpack(NULL, zmq_msg_size(&f[0]), zmq_msg_data(&f[0]));
    zmq_msg_close(&f[0]);
    assert_non_null(rep);
    assert_int_equal(rep->request_id, req.request_id);
    return rep;
}

static ack_t s_submit(learner_t *l, built_t *b, size_t n)
{
    Agora__V1__TrajectoryReply *rep = s_submit_reply(l, b, n);
    assert_int_equal(rep->body_case, AGORA__V1__TRAJECTORY_REPLY__BODY_ACK);
    ack_t a = {rep->ack->n_accepted, rep->ack->n_duplicate, rep->ack->n_stale, rep->ack->n_rejected,
               rep->ack->learner_version};
    agora__v1__trajectory_reply__free_unpacked(rep, NULL);
    return a;
}

static void s_tmpdir(char *out, size_t cap, const char *name)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(out, cap, "%s/agora-test-learner-%d-%s", base, (int)getpid(), name);
}

static void s_rmdir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* ----------------------------------------------------------------- tests */

static void test_protocol(void **state)
{
    (void)state;
    char dir[256];
    s_tmpdir(dir, sizeof dir, "protocol");
    learner_t l = {0};
    s_start(&l, dir, NULL);
    void *sub = s_connect(&l, ZMQ_SUB, l.weights);
    s_wait_ready(&l);

    /* garbage on both ROUTERs: BAD_REQUEST with request_id 0, and the service goes on */
    zmq_msg_t f[3];
    for (int k = 0; k < 2; k++) {
        void *sock = k ? l.ctl : l.dealer;
        assert_int_equal(zmq_send(sock, "\xff\xff\xff", 3, 0), 3);
        assert_int_equal(s_recv(sock, f, 3, 5000), 1);
        Agora__V1__TrajectoryReply *r =
            agora__v1__trajectory_reply__unpack(NULL, zmq_msg_size(&f[0]), zmq_msg_data(&f[0]));
        assert_non_null(r);
        assert_int_equal(r->request_id, 0);
        assert_int_equal(r->body_case, AGORA__V1__TRAJECTORY_REPLY__BODY_ERROR);
        assert_int_equal(r->error->code, AGORA__V1__ERROR_CODE__ERROR_BAD_REQUEST);
        agora__v1__trajectory_reply__free_unpacked(r, NULL);
        zmq_msg_close(&f[0]);
        /* three frames: a bad layout */
        zmq_send(sock, "a", 1, ZMQ_SNDMORE);
        zmq_send(sock, "b", 1, ZMQ_SNDMORE);
        zmq_send(sock, "c", 1, 0);
        assert_int_equal(s_recv(sock, f, 3, 5000), 1);
        zmq_msg_close(&f[0]);
    }
    /* version mismatch on control */
    Agora__V1__StatusRequest sr = AGORA__V1__STATUS_REQUEST__INIT;
    Agora__V1__ControlRequest req = AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_STATUS;
    req.status = &sr;
    req.protocol_version = 2;
    req.request_id = 77;
    uint8_t buf[64];
    size_t n = protobuf_c_message_pack(&req.base, buf);
    zmq_send(l.ctl, buf, n, 0);
    assert_int_equal(s_recv(l.ctl, f, 3, 5000), 1);
    Agora__V1__ControlReply *rep =
        agora__v1__control_reply__unpack(NULL, zmq_msg_size(&f[0]), zmq_msg_data(&f[0]));
    zmq_msg_close(&f[0]);
    assert_int_equal(rep->request_id, 77);
    assert_int_equal(rep->error->code, AGORA__V1__ERROR_CODE__ERROR_VERSION_MISMATCH);
    agora__v1__control_reply__free_unpacked(rep, NULL);

    /* status, league, weights snapshot */
    rep = s_status(&l);
    assert_int_equal(rep->status->version, 1);
    assert_int_equal(rep->status->updates, 0);
    assert_string_equal(rep->status->phase, "ppo");
    agora__v1__control_reply__free_unpacked(rep, NULL);
    Agora__V1__LeagueRequest lr = AGORA__V1__LEAGUE_REQUEST__INIT;
    req = (Agora__V1__ControlRequest)AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_LEAGUE;
    req.league = &lr;
    rep = s_control(&l, &req, NULL, NULL);
    assert_int_equal(rep->league->n_versions, 1);
    assert_int_equal(rep->league->versions[0], 1);
    agora__v1__control_reply__free_unpacked(rep, NULL);

    ag_model_config_t cfg;
    ag_model_config_default(&cfg);
    cfg.d_model = 16;
    cfg.n_layers = 1;
    cfg.n_heads = 2;
    cfg.ctx = 32;
    cfg.mlp_ratio = 2;
    const size_t nbytes = ag_model_config_num_params(&cfg) * sizeof(float);
    Agora__V1__GetWeightsRequest gw = AGORA__V1__GET_WEIGHTS_REQUEST__INIT;
    req = (Agora__V1__ControlRequest)AGORA__V1__CONTROL_REQUEST__INIT;
    req.body_case = AGORA__V1__CONTROL_REQUEST__BODY_GET_WEIGHTS;
    req.get_weights = &gw;
    zmq_msg_t raw;
    int has_raw = 0;
    rep = s_control(&l, &req, &raw, &has_raw);
    assert_int_equal(rep->body_case, AGORA__V1__CONTROL_REPLY__BODY_WEIGHTS);
    assert_true(has_raw);
    assert_int_equal(rep->weights->version, 1);
    assert_int_equal(rep->weights->num_bytes, nbytes);
    assert_int_equal(zmq_msg_size(&raw), nbytes);
    assert_string_equal(rep->weights->dtype, "f32le");
    assert_int_equal(rep->weights->config->d_model, 16);
    assert_int_equal(rep->weights->config->vocab_size, AG_VOCAB_SIZE);
    assert_int_equal(rep->weights->crc32, ag_crc32(0, zmq_msg_data(&raw), nbytes));
    zmq_msg_close(&raw);
    agora__v1__control_reply__free_unpacked(rep, NULL);
    gw.version = 99;
    rep = s_control(&l, &req, NULL, &has_raw);
    assert_false(has_raw);
    assert_int_equal(rep->error->code, AGORA__V1__ERROR_CODE__ERROR_UNKNOWN_MODEL);
    agora__v1__control_reply__free_unpacked(rep, NULL);

    /* one update: version 2 is published on the PUB (topic, header, raw) */
    built_t b[4];
    for (int i = 0; i < 4; i++)
        s_build(&b[i], "pub-actor", (uint64_t)i, 1, 0);
    ack_t a = s_submit(&l, b, 4);
    assert_int_equal(a.accepted, 4);
    s_wait_updates(&l, 1);
    int got;
    do {
        got = s_recv(sub, f, 3, 5000);
        assert_int_equal(got, 3);
        assert_int_equal(zmq_msg_size(&f[0]), 16);
        Agora__V1__WeightsHeader *h =
            agora__v1__weights_header__unpack(NULL, zmq_msg_size(&f[1]), zmq_msg_data(&f[1]));
        assert_non_null(h);
        uint64_t v = h->version;
        assert_int_equal(h->num_bytes, zmq_msg_size(&f[2]));
        assert_int_equal(h->crc32, ag_crc32(0, zmq_msg_data(&f[2]), zmq_msg_size(&f[2])));
        agora__v1__weights_header__free_unpacked(h, NULL);
        s_close_frames(f, 3);
        if (v == 2)
            break;
    } while (1);
    rep = s_status(&l);
    assert_int_equal(rep->status->version, 2);
    assert_float_equal(s_metric(rep->status, "actor:pub-actor"), 4.0, 0.0);
    assert_true(s_metric(rep->status, "judge_accuracy") >= 0.0);
    agora__v1__control_reply__free_unpacked(rep, NULL);
    /* mutated submissions (random byte flips of a valid one): every one is answered,
     * with an ack or an error, and the learner keeps serving */
    Agora__V1__Trajectory *tp[4] = {&b[0].t, &b[1].t, &b[2].t, &b[3].t};
    Agora__V1__SubmitTrajectories st = AGORA__V1__SUBMIT_TRAJECTORIES__INIT;
    st.n_trajectories = 4;
    st.trajectories = tp;
    Agora__V1__TrajectoryRequest tr = AGORA__V1__TRAJECTORY_REQUEST__INIT;
    tr.protocol_version = 1;
    tr.body_case = AGORA__V1__TRAJECTORY_REQUEST__BODY_SUBMIT;
    tr.submit = &st;
    size_t plen = protobuf_c_message_get_packed_size(&tr.base);
    uint8_t *packed = malloc(plen), *mut = malloc(plen);
    protobuf_c_message_pack(&tr.base, packed);
    uint64_t x = 88172645463325252ULL;
    for (int round = 0; round < 300; round++) {
        memcpy(mut, packed, plen);
        for (int k = 0; k < 1 + round % 8; k++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            mut[x % plen] = (uint8_t)(x >> 32);
        }
        assert_int_equal(zmq_send(l.dealer, mut, plen, 0), (int)plen);
        assert_int_equal(s_recv(l.dealer, f, 3, 5000), 1);
        Agora__V1__TrajectoryReply *r =
            agora__v1__trajectory_reply__unpack(NULL, zmq_msg_size(&f[0]), zmq_msg_data(&f[0]));
        assert_non_null(r);
        assert_true(r->body_case == AGORA__V1__TRAJECTORY_REPLY__BODY_ACK ||
                    r->body_case == AGORA__V1__TRAJECTORY_REPLY__BODY_ERROR);
        agora__v1__trajectory_reply__free_unpacked(r, NULL);
        zmq_msg_close(&f[0]);
    }
    free(packed);
    free(mut);
    rep = s_status(&l);
    assert_true(rep->status->version >= 2);
    agora__v1__control_reply__free_unpacked(rep, NULL);
    for (int i = 0; i < 4; i++)
        s_unbuild(&b[i]);
    zmq_close(sub);
    assert_int_equal(s_stop(&l), 0);
    s_rmdir(dir);
}

static void test_resend_trained_once(void **state)
{
    (void)state;
    char dir[256];
    s_tmpdir(dir, sizeof dir, "resend");
    learner_t l = {0};
    s_start(&l, dir, NULL);
    s_wait_ready(&l);
    built_t b[9];
    for (int i = 0; i < 9; i++)
        s_build(&b[i], "actor-a", (uint64_t)i, 1, i == 4);
    ack_t a = s_submit(&l, b, 4);
    assert_int_equal(a.accepted, 4);
    s_wait_updates(&l, 1);
    /* the ack was "lost": the actor resends the same ids */
    a = s_submit(&l, b, 4);
    assert_int_equal(a.accepted, 0);
    assert_int_equal(a.duplicate, 4);
    /* a malformed one is rejected; the same id twice in one request: one duplicate */
    built_t twice[2];
    s_build(&twice[0], "actor-a", 5, 1, 0);
    s_build(&twice[1], "actor-a", 5, 1, 0);
    a = s_submit(&l, &b[4], 1);
    assert_int_equal(a.rejected, 1);
    a = s_submit(&l, twice, 2);
    assert_int_equal(a.accepted, 1);
    assert_int_equal(a.duplicate, 1);
    /* 5 + 1 queued, duplicates not among them: no update before the batch is full */
    usleep(500 * 1000);
    Agora__V1__ControlReply *rep = s_status(&l);
    assert_int_equal(rep->status->updates, 1);
    assert_float_equal(s_metric(rep->status, "pending"), 1.0, 0.0);
    agora__v1__control_reply__free_unpacked(rep, NULL);
    a = s_submit(&l, &b[6], 3);
    assert_int_equal(a.accepted, 3);
    s_wait_updates(&l, 2);
    rep = s_status(&l);
    assert_int_equal(rep->status->trajectories, 8);
    assert_float_equal(s_metric(rep->status, "trained_trajectories"), 8.0, 0.0);
    assert_float_equal(s_metric(rep->status, "actor:actor-a"), 8.0, 0.0);
    assert_float_equal(s_metric(rep->status, "duplicates_total"), 5.0, 0.0);
    assert_float_equal(s_metric(rep->status, "rejected_total"), 1.0, 0.0);
    agora__v1__control_reply__free_unpacked(rep, NULL);
    for (int i = 0; i < 9; i++)
        s_unbuild(&b[i]);
    s_unbuild(&twice[0]);
    s_unbuild(&twice[1]);
    assert_int_equal(s_stop(&l), 0);
    /* the metrics file has one record per update, with the actor counts */
    char path[300], line[8192];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    int lines = 0;
    while (fgets(line, sizeof line, fp)) {
        lines++;
        assert_non_null(strstr(line, "\"phase\":\"ppo\""));
        assert_non_null(strstr(line, "\"actors\":{\"actor-a\":"));
        assert_non_null(strstr(line, "\"judge_accuracy\""));
        /* a KL term (the default): the reference thread scored every row ahead */
        assert_non_null(strstr(line, "\"score_passes\":1,"));
        assert_non_null(strstr(line, "\"reference_ahead\":1,"));
    }
    fclose(fp);
    assert_int_equal(lines, 2);
    s_rmdir(dir);
}

static void test_stale_dropped(void **state)
{
    (void)state;
    char dir[256];
    s_tmpdir(dir, sizeof dir, "stale");
    learner_t l = {0};
    s_start(&l, dir, NULL);
    s_wait_ready(&l);
    built_t b[16];
    uint64_t seq = 0;
    /* bring the learner to version 5 */
    for (int u = 0; u < 4; u++) {
        for (int i = 0; i < 4; i++)
            s_build(&b[i], "actor-s", seq++, (uint64_t)u + 1, 0);
        assert_int_equal(s_submit(&l, b, 4).accepted, 4);
        s_wait_updates(&l, (uint64_t)u + 1);
        for (int i = 0; i < 4; i++)
            s_unbuild(&b[i]);
    }
    /* version 5, max_staleness 3: version 1 is stale, 6 is from the future, 2 is fine */
    s_build(&b[0], "actor-s", seq++, 1, 0);
    s_build(&b[1], "actor-s", seq++, 6, 0);
    ack_t a = s_submit(&l, b, 2);
    assert_int_equal(a.stale, 2);
    assert_int_equal(a.version, 5);
    s_unbuild(&b[0]);
    s_unbuild(&b[1]);
    /* four fresh ones, then one of version 2 behind them: accepted (5 - 2 = 3), but
     * after the update it is 4 versions old and dropped at batch time */
    for (int i = 0; i < 4; i++)
        s_build(&b[i], "actor-s", seq++, 5, 0);
    s_build(&b[4], "actor-s", seq++, 2, 0);
    a = s_submit(&l, b, 5);
    assert_int_equal(a.accepted, 5);
    s_wait_updates(&l, 5);
    for (int i = 5; i < 9; i++)
        s_build(&b[i], "actor-s", seq++, 6, 0);
    assert_int_equal(s_submit(&l, &b[5], 4).accepted, 4);
    s_wait_updates(&l, 6);
    Agora__V1__ControlReply *rep = s_status(&l);
    assert_float_equal(s_metric(rep->status, "stale_total"), 3.0, 0.0);
    assert_float_equal(s_metric(rep->status, "trained_trajectories"), 24.0, 0.0);
    assert_float_equal(s_metric(rep->status, "pending"), 0.0, 0.0);
    agora__v1__control_reply__free_unpacked(rep, NULL);
    for (int i = 0; i < 9; i++)
        s_unbuild(&b[i]);
    assert_int_equal(s_stop(&l), 0);
    s_rmdir(dir);
}

/* With min_actors 2, no update happens while one actor alone sends, and that actor
 * may fill only half the queue (max_pending 8: 4); the rest is OVERLOADED, to be
 * resent. The first trajectory of a second actor starts PPO. */
static void test_min_actors(void **state)
{
    (void)state;
    char dir[256];
    s_tmpdir(dir, sizeof dir, "min-actors");
    learner_t l = {0};
    s_min_actors = "2";
    s_start(&l, dir, NULL);
    s_min_actors = "1";
    s_wait_ready(&l);
    built_t a[6], b[2];
    for (int i = 0; i < 6; i++)
        s_build(&a[i], "actor-a", (uint64_t)i, 1, 0);
    for (int i = 0; i < 2; i++)
        s_build(&b[i], "actor-b", (uint64_t)i, 1, 0);
    assert_int_equal(s_submit(&l, a, 4).accepted, 4);
    Agora__V1__TrajectoryReply *rep = s_submit_reply(&l, &a[4], 2);
    assert_int_equal(rep->body_case, AGORA__V1__TRAJECTORY_REPLY__BODY_ERROR);
    assert_int_equal(rep->error->code, AGORA__V1__ERROR_CODE__ERROR_OVERLOADED);
    agora__v1__trajectory_reply__free_unpacked(rep, NULL);
    usleep(500 * 1000);
    Agora__V1__ControlReply *st = s_status(&l);
    assert_int_equal(st->status->updates, 0);
    assert_float_equal(s_metric(st->status, "pending"), 4.0, 0.0);
    agora__v1__control_reply__free_unpacked(st, NULL);
    assert_int_equal(s_submit(&l, b, 1).accepted, 1);
    s_wait_updates(&l, 1);
    /* the gate is open: the held-back ones are taken now */
    assert_int_equal(s_submit(&l, &a[4], 2).accepted, 2);
    assert_int_equal(s_submit(&l, &b[1], 1).accepted, 1);
    s_wait_updates(&l, 2);
    st = s_status(&l);
    assert_float_equal(s_metric(st->status, "actor:actor-a"), 6.0, 0.0);
    assert_float_equal(s_metric(st->status, "actor:actor-b"), 2.0, 0.0);
    agora__v1__control_reply__free_unpacked(st, NULL);
    for (int i = 0; i < 6; i++)
        s_unbuild(&a[i]);
    for (int i = 0; i < 2; i++)
        s_unbuild(&b[i]);
    assert_int_equal(s_stop(&l), 0);
    s_rmdir(dir);
}

/* Feeds trajectories [from, to) of a fixed list, batch by batch. */
static void s_feed(learner_t *l, uint64_t from, uint64_t to)
{
    for (uint64_t s = from; s < to; s += 4) {
        built_t b[4];
        for (int i = 0; i < 4; i++)
            s_build(&b[i], "actor-r", s + (uint64_t)i, 1, 0);
        assert_int_equal(s_submit(l, b, 4).accepted, 4);
        s_wait_updates(l, (s + 4) / 4);
        for (int i = 0; i < 4; i++)
            s_unbuild(&b[i]);
    }
}

/* The parameters of dir/policy.ckpt, which must hold version `version`. */
static float *s_load_params(const char *dir, uint64_t version, size_t *n)
{
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/policy.ckpt", dir);
    ag_ckpt_info_t info;
    int rc;
    ag_model_t *m = ag_ckpt_load(path, 1, &info, &rc, err, sizeof err);
    if (!m)
        fail_msg("%s", err);
    *n = ag_model_num_params(m);
    float *p = malloc(*n * sizeof(float));
    memcpy(p, ag_model_params(m), *n * sizeof(float));
    assert_int_equal(info.step, version);
    assert_true(info.has_optimizer);
    ag_model_destroy(&m);
    return p;
}

/* The straight run a resumed one is compared with: trajectories [0, n) in dir, then stop. */
static void s_straight(const char *dir, uint64_t n)
{
    learner_t l = {0};
    s_start(&l, dir, NULL);
    s_wait_ready(&l);
    s_feed(&l, 0, n);
    assert_int_equal(s_stop(&l), 0);
}

static void test_resume_equivalence(void **state)
{
    (void)state;
    char da[256], db[256];
    s_tmpdir(da, sizeof da, "straight");
    s_tmpdir(db, sizeof db, "resumed");
    s_straight(da, 16);
    learner_t l = {0};
    s_start(&l, db, NULL);
    s_wait_ready(&l);
    s_feed(&l, 0, 8);
    assert_int_equal(s_stop(&l), 0);
    memset(&l, 0, sizeof l);
    s_start(&l, db, db);
    s_wait_ready(&l);
    Agora__V1__ControlReply *rep = s_status(&l);
    assert_int_equal(rep->status->version, 3);
    assert_int_equal(rep->status->updates, 2);
    agora__v1__control_reply__free_unpacked(rep, NULL);
    /* the resumed learner remembers what it has seen */
    built_t dup;
    s_build(&dup, "actor-r", 0, 1, 0);
    assert_int_equal(s_submit(&l, &dup, 1).duplicate, 1);
    s_unbuild(&dup);
    s_feed(&l, 8, 16);
    assert_int_equal(s_stop(&l), 0);

    size_t na, nb;
    float *pa = s_load_params(da, 5, &na), *pb = s_load_params(db, 5, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na * sizeof(float));
    /* and training did move the weights away from the initial policy */
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/reference.ckpt", da);
    ag_model_t *ref = ag_ckpt_load(path, 1, NULL, NULL, err, sizeof err);
    assert_non_null(ref);
    assert_true(memcmp(ag_model_params(ref), pa, na * sizeof(float)) != 0);
    ag_model_destroy(&ref);
    free(pa);
    free(pb);
    s_rmdir(da);
    s_rmdir(db);
}

/* Rewrites the CRC-32 at the end of a queue.bin image, so the structural checks
 * behind it are reached. */
static void s_reseal(uint8_t *q, size_t len)
{
    uint32_t c = ag_crc32(0, q, len - 4);
    for (int i = 0; i < 4; i++)
        q[len - 4 + (size_t)i] = (uint8_t)(c >> (8 * i));
}

/* queue.bin's encoding read back, and every damaged image refused without a read
 * outside it (the sanitizer build checks that part). */
static void test_queue_file(void **state)
{
    (void)state;
    const uint8_t a[] = {1, 2, 3}, c[] = {9};
    const ag_queue_rec_t in[3] = {{a, sizeof a}, {NULL, 0}, {c, sizeof c}};
    uint8_t *q;
    size_t len, n;
    uint32_t crc, crc2;
    ag_queue_rec_t *out;
    char why[256];
    assert_int_equal(ag_queue_encode(in, 3, &q, &len, &crc), 0);
    assert_int_equal(len, 8 + 4 + (4 + 3) + 4 + (4 + 1) + 4);
    assert_memory_equal(q, "agoraQ1\n\x03\0\0\0\x03\0\0\0", 16);
    assert_int_equal(crc, ag_crc32(0, q, len - 4));
    assert_int_equal(ag_queue_decode(q, len, &out, &n, &crc2, why, sizeof why), 0);
    assert_int_equal(n, 3);
    assert_int_equal(crc2, crc);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(out[i].len, in[i].len);
        if (in[i].len)
            assert_memory_equal(out[i].data, in[i].data, in[i].len);
    }
    free(out);

    /* every truncation, in a buffer of its own size */
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *t = malloc(cut ? cut : 1);
        memcpy(t, q, cut);
        assert_int_equal(ag_queue_decode(t, cut, &out, &n, &crc2, why, sizeof why), -EBADMSG);
        assert_null(out);
        free(t);
    }
    /* valid checksums over bad structure: magic, a count too large or too small,
     * a record running past the end, trailing bytes */
    uint8_t *t = malloc(len + 1);
    const struct {
        size_t at;
        uint8_t v;
        size_t len;
        const char *why;
    } bad[] = {
        {0, 'A', len, "magic"},         {8, 200, len, "cannot fit"},
        {8, 4, len, "past the end"},    {8, 2, len, "after the last record"},
        {12, 250, len, "past the end"}, {len - 4, 0, len + 1, "after the last record"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memcpy(t, q, len);
        if (bad[i].len > len)
            memmove(t + len - 3, t + len - 4, 4);
        t[bad[i].at] = bad[i].v;
        s_reseal(t, bad[i].len);
        assert_int_equal(ag_queue_decode(t, bad[i].len, &out, &n, &crc2, why, sizeof why),
                         -EBADMSG);
        if (!strstr(why, bad[i].why))
            fail_msg("case %zu: \"%s\" does not say \"%s\"", i, why, bad[i].why);
    }
    free(t);
    /* an empty queue is a valid file too */
    free(q);
    assert_int_equal(ag_queue_encode(NULL, 0, &q, &len, &crc), 0);
    assert_int_equal(len, 16);
    assert_int_equal(ag_queue_decode(q, len, &out, &n, &crc2, why, sizeof why), 0);
    assert_int_equal(n, 0);
    free(out);
    free(q);
}

static int s_file_has(const char *path, const char *needle)
{
    size_t len;
    uint8_t *b = harness_read_file(path, &len);
    assert_non_null(b);
    int found = strstr((char *)b, needle) != NULL;
    free(b);
    return found;
}

/* The queue a checkpoint saved in dir: state.json's count and CRC-32, and
 * queue.bin's records (decoded; free with s_free_saved). */
typedef struct saved {
    ag_learner_state_t st;
    uint8_t *file;
    size_t len;
    ag_queue_rec_t *recs;
    size_t n;
    uint32_t crc;
} saved_t;

static void s_load_saved(const char *dir, saved_t *sv)
{
    char path[300], err[256];
    snprintf(path, sizeof path, "%s/state.json", dir);
    if (ag_state_load(path, &sv->st, err, sizeof err) < 0)
        fail_msg("%s", err);
    snprintf(path, sizeof path, "%s/queue.bin", dir);
    sv->file = harness_read_file(path, &sv->len);
    assert_non_null(sv->file);
    if (ag_queue_decode(sv->file, sv->len, &sv->recs, &sv->n, &sv->crc, err, sizeof err) < 0)
        fail_msg("%s", err);
    assert_int_equal(sv->n, sv->st.queue_count);
    assert_int_equal(sv->crc, sv->st.queue_crc32);
}

static void s_free_saved(saved_t *sv)
{
    ag_state_finish(&sv->st);
    free(sv->recs);
    free(sv->file);
}

static double s_pending(learner_t *l, uint64_t *updates)
{
    Agora__V1__ControlReply *rep = s_status(l);
    double p = s_metric(rep->status, "pending");
    if (updates)
        *updates = rep->status->updates;
    agora__v1__control_reply__free_unpacked(rep, NULL);
    return p;
}

/* Resumes a copy of src whose queue.bin is damaged (variant 0: one byte
 * flipped), missing (1), a valid file of another checkpoint (2, a crash
 * between queue.bin and state.json), whose state.json predates the saved
 * queue (3, no "queue" key), or whose state.json is older than policy.ckpt
 * (4, a crash between policy.ckpt and queue.bin). The learner starts with an
 * empty queue, warns but in case 3, and serves. */
static void s_resume_broken(const char *src, int variant)
{
    char dir[256], name[32], cmd[800], path[300], log[300], err[256];
    snprintf(name, sizeof name, "q-broken-%d", variant);
    s_tmpdir(dir, sizeof dir, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -r '%s' '%s'", dir, src, dir);
    assert_int_equal(system(cmd), 0);
    snprintf(path, sizeof path, "%s/queue.bin", dir);
    saved_t sv = {0};
    s_load_saved(dir, &sv);
    assert_true(sv.n >= 2);
    if (variant == 0) {
        sv.file[sv.len / 2] ^= 0x40;
        assert_int_equal(harness_write_file(path, sv.file, sv.len), 0);
    } else if (variant == 1) {
        assert_int_equal(unlink(path), 0);
    } else if (variant == 2) {
        uint8_t *other;
        size_t other_len;
        uint32_t crc;
        assert_int_equal(ag_queue_encode(sv.recs, 1, &other, &other_len, &crc), 0);
        assert_int_equal(harness_write_file(path, other, other_len), 0);
        free(other);
    } else {
        snprintf(path, sizeof path, "%s/state.json", dir);
        json_error_t je;
        json_t *o = json_load_file(path, 0, &je);
        assert_non_null(o);
        if (variant == 3)
            assert_int_equal(json_object_del(o, "queue"), 0);
        else
            assert_int_equal(json_object_set_new(o, "version", json_string("1")), 0);
        assert_int_equal(json_dump_file(o, path, JSON_INDENT(1)), 0);
        json_decref(o);
    }
    s_free_saved(&sv);

    snprintf(log, sizeof log, "%s.log", dir);
    learner_t l = {0};
    s_log = log;
    s_start(&l, dir, dir);
    s_log = NULL;
    s_wait_ready(&l);
    uint64_t updates;
    assert_float_equal(s_pending(&l, &updates), 0.0, 0.0);
    assert_int_equal(updates, 1);
    assert_int_equal(s_stop(&l), 0);
    int warned = s_file_has(log, "queue.bin") && s_file_has(log, "are lost");
    assert_int_equal(warned, variant != 3);
    /* and the learner's own checkpoint is whole again */
    ag_learner_state_t st;
    snprintf(path, sizeof path, "%s/state.json", dir);
    if (ag_state_load(path, &st, err, sizeof err) < 0)
        fail_msg("%s", err);
    assert_int_equal(st.queue_count, 0);
    ag_state_finish(&st);
    unlink(log);
    s_rmdir(dir);
}

/* Straight: 8 trajectories, 2 updates. Resumed: 4 (1 update) and 2 more
 * acknowledged but not trained, SIGTERM, --resume: the 2 are queued again,
 * their resend is a duplicate, 2 more make the second update, and the
 * weights are bit-identical to the straight run's. */
static void test_resume_keeps_queue(void **state)
{
    (void)state;
    char da[256], db[256];
    s_tmpdir(da, sizeof da, "q-straight");
    s_tmpdir(db, sizeof db, "q-resumed");
    s_straight(da, 8);
    learner_t l = {0};
    s_start(&l, db, NULL);
    s_wait_ready(&l);
    s_feed(&l, 0, 4);
    built_t b[4];
    for (int i = 0; i < 4; i++)
        s_build(&b[i], "actor-r", 4 + (uint64_t)i, 1, 0);
    assert_int_equal(s_submit(&l, b, 2).accepted, 2);
    usleep(300 * 1000);
    uint64_t updates;
    assert_float_equal(s_pending(&l, &updates), 2.0, 0.0);
    assert_int_equal(updates, 1);
    assert_int_equal(s_stop(&l), 0);

    /* state.json vouches for queue.bin, which holds the two as they were sent */
    saved_t sv = {0};
    s_load_saved(db, &sv);
    assert_int_equal(sv.n, 2);
    for (size_t i = 0; i < 2; i++) {
        size_t len = agora__v1__trajectory__get_packed_size(&b[i].t);
        uint8_t *packed = malloc(len);
        agora__v1__trajectory__pack(&b[i].t, packed);
        assert_int_equal(sv.recs[i].len, len);
        assert_memory_equal(sv.recs[i].data, packed, len);
        free(packed);
    }
    s_free_saved(&sv);

    for (int variant = 0; variant < 5; variant++)
        s_resume_broken(db, variant);

    memset(&l, 0, sizeof l);
    s_start(&l, db, db);
    s_wait_ready(&l);
    assert_float_equal(s_pending(&l, &updates), 2.0, 0.0);
    assert_int_equal(updates, 1);
    assert_int_equal(s_submit(&l, &b[0], 1).duplicate, 1);
    assert_int_equal(s_submit(&l, &b[2], 2).accepted, 2);
    s_wait_updates(&l, 2);
    Agora__V1__ControlReply *rep = s_status(&l);
    assert_int_equal(rep->status->trajectories, 8);
    assert_float_equal(s_metric(rep->status, "trained_trajectories"), 8.0, 0.0);
    assert_float_equal(s_metric(rep->status, "actor:actor-r"), 8.0, 0.0);
    assert_float_equal(s_metric(rep->status, "pending"), 0.0, 0.0);
    assert_float_equal(s_metric(rep->status, "duplicates_total"), 1.0, 0.0);
    agora__v1__control_reply__free_unpacked(rep, NULL);
    assert_int_equal(s_stop(&l), 0);
    for (int i = 0; i < 4; i++)
        s_unbuild(&b[i]);

    size_t na, nb;
    float *pa = s_load_params(da, 3, &na), *pb = s_load_params(db, 3, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(pa, pb, na * sizeof(float));
    free(pa);
    free(pb);
    s_rmdir(da);
    s_rmdir(db);
}

/* A learner resumed with a smaller queue (learner.max_pending lowered) keeps
 * the first trajectories of the saved queue and warns about the rest. Two
 * actors are required, so the queue of one actor is never trained. */
static void test_resume_queue_cut(void **state)
{
    (void)state;
    enum { N = 70 };
    char dir[256], log[300];
    s_tmpdir(dir, sizeof dir, "q-cut");
    snprintf(log, sizeof log, "%s.log", dir);
    built_t *b = calloc(N, sizeof *b);
    assert_non_null(b);
    for (int i = 0; i < N; i++)
        s_build(&b[i], "actor-c", (uint64_t)i, 1, 0);
    learner_t l = {0};
    s_min_actors = "2";
    s_max_pending = "200";
    s_start(&l, dir, NULL);
    s_wait_ready(&l);
    assert_int_equal(s_submit(&l, b, 64).accepted, 64);
    assert_int_equal(s_submit(&l, &b[64], N - 64).accepted, N - 64);
    assert_float_equal(s_pending(&l, NULL), (double)N, 0.0);
    assert_int_equal(s_stop(&l), 0);

    /* --max-pending 4: a queue of 4 + 64 (a request's worth of slack) */
    memset(&l, 0, sizeof l);
    s_max_pending = "4";
    s_log = log;
    s_start(&l, dir, dir);
    s_log = NULL;
    s_max_pending = "8";
    s_min_actors = "1";
    s_wait_ready(&l);
    assert_float_equal(s_pending(&l, NULL), 68.0, 0.0);
    assert_int_equal(s_stop(&l), 0);
    assert_true(s_file_has(log, "the last 2 of queue.bin are dropped"));
    saved_t sv = {0};
    s_load_saved(dir, &sv);
    assert_int_equal(sv.n, 68);
    for (size_t i = 0; i < sv.n; i++) {
        Agora__V1__Trajectory *t =
            agora__v1__trajectory__unpack(NULL, sv.recs[i].len, sv.recs[i].data);
        assert_non_null(t);
        assert_int_equal(t->id->sequence, i);
        agora__v1__trajectory__free_unpacked(t, NULL);
    }
    s_free_saved(&sv);
    for (int i = 0; i < N; i++)
        s_unbuild(&b[i]);
    free(b);
    unlink(log);
    s_rmdir(dir);
}

static void s_nothing(void *arg)
{
    (void)arg;
}

/* A warm start whose every transcript is longer than model.ctx trains on
 * nothing: the learner says why and exits 1, it does not go on untrained. */
static void test_warmstart_nothing_fits(void **state)
{
    (void)state;
    char dir[256], file[300], traj[64], weights[64], control[64];
    assert_int_equal(harness_mkdtemp(dir, sizeof dir, "learner-ws"), 0);
    snprintf(file, sizeof file, "%s/long.jsonl", dir);
    const char *line = "{\"game\":\"somegame\",\"turns\":[{\"player\":0,\"observation\":"
                       "\"0123456789012345678901234567890123456789\",\"action\":\"x\"}]}\n";
    assert_int_equal(harness_write_file(file, line, strlen(line)), 0);
    assert_int_equal(harness_free_endpoint(traj, sizeof traj), 0);
    assert_int_equal(harness_free_endpoint(weights, sizeof weights), 0);
    assert_int_equal(harness_free_endpoint(control, sizeof control), 0);
    char *const argv[] = {(char *)s_exe,
                          "--trajectories",
                          traj,
                          "--weights",
                          weights,
                          "--control",
                          control,
                          "--out",
                          dir,
                          "--warmstart.file",
                          file,
                          "--env",
                          "",
                          "--model.d_model",
                          "16",
                          "--model.n_layers",
                          "1",
                          "--model.n_heads",
                          "2",
                          "--model.ctx",
                          "32",
                          "--threads",
                          "1",
                          "--progress",
                          "off",
                          "--log.level",
                          "error",
                          NULL};
    assert_int_equal(harness_run_while(argv, 60000, s_nothing, NULL), 1);
    harness_rmtree(dir);
}

static int s_kill_children(void **state)
{
    (void)state;
    for (size_t i = 0; i < s_n_children; i++)
        if (waitpid(s_children[i], NULL, WNOHANG) == 0) {
            kill(s_children[i], SIGKILL);
            waitpid(s_children[i], NULL, 0);
        }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: test_learner PATH/TO/agora-learner\n");
        return 2;
    }
    s_exe = argv[1];
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_file),
        cmocka_unit_test(test_protocol),
        cmocka_unit_test(test_resend_trained_once),
        cmocka_unit_test(test_stale_dropped),
        cmocka_unit_test(test_min_actors),
        cmocka_unit_test(test_resume_equivalence),
        cmocka_unit_test(test_resume_keeps_queue),
        cmocka_unit_test(test_resume_queue_cut),
        cmocka_unit_test(test_warmstart_nothing_fits),
    };
    return cmocka_run_group_tests(tests, NULL, s_kill_children);
}
