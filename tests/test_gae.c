/*
 * test_gae.c - credit assignment of learner/gae.c against hand-computed
 * examples: GAE over a seat's own tokens across turns, turn-level
 * discounting, an end-of-game reward reaching the first turn, the batch
 * layout (position j-1 carries generated token j) and whitening; plus the
 * trajectory checks of learner/traj.c that the batch relies on.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "gae.h"
#include "model.h"
#include "seq.h"
#include "traj.h"

/* BOS a b | x EOT | c | y EOT : two turns, generated tokens at 3, 4, 6, 7. */
static void s_two_turns(ag_seq_t *s, float r1, float r2)
{
    ag_seq_init(s);
    assert_int_equal(ag_seq_begin(s), 0);
    assert_int_equal(ag_seq_context(s, "ab", 2), 0);
    assert_int_equal(ag_seq_generated(s, 'x', -0.5f, 0.1f), 0);
    assert_int_equal(ag_seq_generated(s, AG_TOK_EOT, -0.25f, 0.2f), 0);
    assert_int_equal(ag_seq_end_turn(s, 1), 0);
    ag_seq_reward(s, r1);
    assert_int_equal(ag_seq_context(s, "c", 1), 0);
    assert_int_equal(ag_seq_generated(s, 'y', -1.0f, 0.3f), 0);
    assert_int_equal(ag_seq_generated(s, AG_TOK_EOT, -0.125f, 0.4f), 0);
    assert_int_equal(ag_seq_end_turn(s, 1), 0);
    ag_seq_reward(s, r2);
}

static void test_gae_hand_computed(void **state)
{
    (void)state;
    ag_seq_t s;
    s_two_turns(&s, 0.0f, 1.0f);
    float adv[8], ret[8];
    ag_gae_config_t c = {.gamma = 1.0f, .lambda = 0.5f, .turn_gamma = 1.0f};
    assert_int_equal(ag_gae_seat(&s, s.values, &c, adv, ret), 4);
    /* idx 7: 1 - 0.4 = 0.6; idx 6: 0.4 - 0.3 + 0.5 * 0.6 = 0.4;
     * idx 4: 0.3 - 0.2 + 0.5 * 0.4 = 0.3; idx 3: 0.2 - 0.1 + 0.5 * 0.3 = 0.25 */
    const float want_a[8] = {0, 0, 0, 0.25f, 0.3f, 0, 0.4f, 0.6f};
    const float want_r[8] = {0, 0, 0, 0.35f, 0.5f, 0, 0.7f, 1.0f};
    for (int i = 0; i < 8; i++) {
        assert_float_equal(adv[i], want_a[i], 1e-6);
        assert_float_equal(ret[i], want_r[i], 1e-6);
    }
    /* turn_gamma 0.5 discounts only the step across the turn boundary (idx 4 -> 6):
     * idx 4: 0.5 * 0.3 - 0.2 + 0.5 * 0.5 * 0.4 = 0.05; idx 3: 0.1 + 0.5 * 0.05 = 0.125 */
    c.turn_gamma = 0.5f;
    ag_gae_seat(&s, s.values, &c, adv, ret);
    assert_float_equal(adv[7], 0.6f, 1e-6);
    assert_float_equal(adv[6], 0.4f, 1e-6);
    assert_float_equal(adv[4], 0.05f, 1e-6);
    assert_float_equal(adv[3], 0.125f, 1e-6);
    /* gamma 0.9, lambda 1: Monte-Carlo returns, R_k = sum of discounted rewards */
    c = (ag_gae_config_t){.gamma = 0.9f, .lambda = 1.0f, .turn_gamma = 1.0f};
    ag_gae_seat(&s, s.values, &c, adv, ret);
    assert_float_equal(ret[7], 1.0f, 1e-6);
    assert_float_equal(ret[6], 0.9f, 1e-6);
    assert_float_equal(ret[4], 0.81f, 1e-6);
    assert_float_equal(ret[3], 0.729f, 1e-6);
    assert_float_equal(adv[3], 0.729f - 0.1f, 1e-6);
    ag_seq_finish(&s);
}

/* A four-turn seat whose only reward is +1 on its last turn: every token of
 * the first turn gets a positive advantage, even with zero values. */
static void test_last_turn_reward_reaches_first_turn(void **state)
{
    (void)state;
    ag_seq_t s;
    ag_seq_init(&s);
    ag_seq_begin(&s);
    for (int turn = 0; turn < 4; turn++) {
        ag_seq_context(&s, "obs: ", 5);
        for (int k = 0; k < 6; k++)
            ag_seq_generated(&s, '0' + k, -1.0f, 0.0f);
        ag_seq_generated(&s, AG_TOK_EOT, -1.0f, 0.0f);
        ag_seq_end_turn(&s, 1);
    }
    ag_seq_reward(&s, 1.0f);
    float *zero = calloc(s.len, sizeof(float)), *adv = malloc(s.len * sizeof(float)),
          *ret = malloc(s.len * sizeof(float));
    ag_gae_config_t c = {.gamma = 1.0f, .lambda = 0.95f, .turn_gamma = 1.0f};
    size_t steps = ag_gae_seat(&s, zero, &c, adv, ret);
    assert_int_equal(steps, 28);
    /* first generated token: 27 steps before the reward */
    size_t first = 6; /* BOS + "obs: " */
    assert_true(s.generated[first]);
    assert_float_equal(adv[first], powf(0.95f, 27.0f), 1e-5);
    for (size_t j = 0; j < s.len; j++)
        if (s.generated[j])
            assert_true(adv[j] > 0.2f);
        else
            assert_float_equal(adv[j], 0.0f, 0.0);
    /* lambda = 1: every generated token's return is the final reward */
    c.lambda = 1.0f;
    ag_gae_seat(&s, zero, &c, adv, ret);
    for (size_t j = 0; j < s.len; j++)
        if (s.generated[j])
            assert_float_equal(ret[j], 1.0f, 1e-6);
    free(zero);
    free(adv);
    free(ret);
    ag_seq_finish(&s);
}

static void test_batch_layout_and_gae(void **state)
{
    (void)state;
    ag_seq_t a, b;
    s_two_turns(&a, 0.0f, 1.0f);
    ag_seq_init(&b);
    ag_seq_begin(&b);
    ag_seq_context(&b, "q", 1);
    ag_seq_generated(&b, AG_TOK_EOT, -2.0f, 0.0f);
    ag_seq_end_turn(&b, 1);
    ag_seq_reward(&b, -1.0f);
    const ag_seq_t *rows[2] = {&a, &b};
    ag_batch_t bt;
    assert_int_equal(ag_batch_init(&bt, rows, 2), 0);
    assert_int_equal(bt.B, 2);
    assert_int_equal(bt.T, 7);
    assert_int_equal(bt.len[0], 7);
    assert_int_equal(bt.len[1], 2);
    /* row 0: position t reads token t, predicts token t+1 */
    for (int t = 0; t < 7; t++) {
        assert_int_equal(bt.tokens[t], a.tokens[t]);
        assert_int_equal(bt.targets[t], a.tokens[t + 1]);
        assert_float_equal(bt.mask[t], a.generated[t + 1] ? 1.0f : 0.0f, 0.0);
        assert_float_equal(bt.behaviour[t], a.generated[t + 1] ? a.logprobs[t + 1] : 0.0f, 0.0);
    }
    /* row 1 is padded after its 2 positions */
    assert_int_equal(bt.targets[7 + 1], AG_TOK_EOT);
    assert_float_equal(bt.mask[7 + 1], 1.0f, 0.0);
    for (int t = 2; t < 7; t++) {
        assert_int_equal(bt.tokens[7 + t], AG_TOK_PAD);
        assert_float_equal(bt.mask[7 + t], 0.0f, 0.0);
    }
    /* values in the batch layout: the value that generated token j is at j-1 */
    for (int t = 0; t < 7; t++)
        bt.values[t] = a.values[t + 1];
    ag_gae_config_t c = {.gamma = 1.0f, .lambda = 0.5f, .turn_gamma = 1.0f};
    assert_int_equal(ag_batch_gae(&bt, rows, &c), 0);
    assert_float_equal(bt.adv[2], 0.25f, 1e-6); /* token 3 */
    assert_float_equal(bt.adv[3], 0.3f, 1e-6);  /* token 4 */
    assert_float_equal(bt.adv[5], 0.4f, 1e-6);  /* token 6 */
    assert_float_equal(bt.adv[6], 0.6f, 1e-6);  /* token 7 */
    assert_float_equal(bt.adv[7 + 1], -1.0f, 1e-6);
    assert_float_equal(bt.ret[6], 1.0f, 1e-6);
    /* whitening over the five generated positions */
    double mean, sd;
    assert_int_equal(ag_batch_whiten(&bt, &mean, &sd), 5);
    assert_float_equal(mean, (0.25 + 0.3 + 0.4 + 0.6 - 1.0) / 5, 1e-6);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < 14; i++)
        if (bt.mask[i] != 0.0f) {
            s1 += bt.adv[i];
            s2 += bt.adv[i] * bt.adv[i];
        } else {
            assert_float_equal(bt.adv[i], 0.0f, 0.0);
        }
    assert_float_equal(s1 / 5, 0.0, 1e-6);
    assert_float_equal(s2 / 5, 1.0, 1e-5);
    ag_batch_finish(&bt);
    ag_seq_finish(&a);
    ag_seq_finish(&b);
}

static void s_pb(ag_seq_t *s, Agora__V1__Trajectory *t, Agora__V1__TrajectoryId *id,
                 Agora__V1__SeatTrajectory *seat, Agora__V1__SeatTrajectory **seats, uint32_t *buf)
{
    agora__v1__trajectory__init(t);
    agora__v1__trajectory_id__init(id);
    id->actor_id = (char *)"a1";
    id->sequence = 3;
    ag_traj_seat_to_pb(s, 0, true, seat, buf);
    seats[0] = seat;
    t->id = id;
    t->n_seats = 1;
    t->seats = seats;
}

static void test_traj_validation(void **state)
{
    (void)state;
    ag_seq_t s;
    s_two_turns(&s, 0.0f, 1.0f);
    Agora__V1__Trajectory t;
    Agora__V1__TrajectoryId id;
    Agora__V1__SeatTrajectory seat, *seats[1];
    uint32_t buf[16];
    char why[256];
    ag_traj_t *out = NULL;
    s_pb(&s, &t, &id, &seat, seats, buf);
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 256, &out, why, sizeof why), 0);
    assert_int_equal(out->n_seats, 1);
    assert_int_equal(out->seats[0].len, 8);
    assert_int_equal(out->min_version, 1);
    assert_float_equal(out->seats[0].turn_rewards[1], 1.0f, 0.0);
    ag_traj_free(&out);
    assert_null(out);
    /* longer than the context */
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 7, &out, why, sizeof why), -EINVAL);
    assert_non_null(strstr(why, "context"));
    /* a token outside the vocabulary, then PAD */
    buf[2] = 300;
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 256, &out, why, sizeof why), -EINVAL);
    buf[2] = AG_TOK_PAD;
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 256, &out, why, sizeof why), -EINVAL);
    buf[2] = 'b';
    /* turn_end on a context token, and out of range */
    s.turn_end[0] = 2;
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 256, &out, why, sizeof why), -EINVAL);
    s.turn_end[0] = 40;
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 256, &out, why, sizeof why), -EINVAL);
    s.turn_end[0] = 4;
    /* mismatched lengths */
    seat.n_logprobs = 7;
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 256, &out, why, sizeof why), -EINVAL);
    seat.n_logprobs = 8;
    seat.n_turn_rewards = 1;
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 256, &out, why, sizeof why), -EINVAL);
    seat.n_turn_rewards = 2;
    /* a non-finite reward */
    s.turn_rewards[1] = NAN;
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 256, &out, why, sizeof why), -EINVAL);
    s.turn_rewards[1] = 1.0f;
    /* not trainable: nothing to train, rejected */
    seat.trainable = false;
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 256, &out, why, sizeof why), -EINVAL);
    seat.trainable = true;
    assert_int_equal(ag_traj_from_pb(&t, AG_VOCAB_SIZE, 256, &out, why, sizeof why), 0);
    ag_traj_free(&out);
    ag_seq_finish(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gae_hand_computed),
        cmocka_unit_test(test_last_turn_reward_reaches_first_turn),
        cmocka_unit_test(test_batch_layout_and_gae),
        cmocka_unit_test(test_traj_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
