/* test_control: user/gateway/control_pods.c and control_reload.c, the
 * control thread's pod table and reload, driven on a struct ctl without a
 * loop or a thread (no probes go out; numeric hosts need no resolver):
 * add (names, addresses, room), remove (prefix index and session pins
 * forgotten), drain, the snapshot published, a reload's pod changes, the
 * keys it leaves for a restart, and the kill switch kept through it. */
#include "gateway/control_pods.c"
#include "gateway/control_reload.c"

#include <errno.h>
#include <unistd.h>

#include "harness.h"

static struct gw g;
static struct ctl *C;
static char err[512];

static struct ctl *new_ctl(void)
{
    struct ctl *c = calloc(1, sizeof(*c));
    c->g = &g;
    c->efd = -1;
    c->cfg = g.cfg;
    return c;
}

static void pod(struct gw_pod_cfg *p, const char *url, const char *name)
{
    CHECK_EQ(gw_pod_from_url(url, p, err, sizeof(err)), 0);
    if (name)
        snprintf(p->name, sizeof(p->name), "%s", name);
}

static struct cpod *by_name(const char *name)
{
    return find_pod(C, name);
}

TEST(add_remove_drain)
{
    struct gw_pod_cfg a, b;
    pod(&a, "http://127.0.0.1:9001", "a");
    CHECK_EQ(ctl_add_pod(C, &a, err, sizeof(err), NULL, NULL, 0), 0);
    CHECK_EQ(ctl_add_pod(C, &a, err, sizeof(err), NULL, NULL, 0), -EEXIST);
    CHECK_STR(err, "a pod named \"a\" exists");
    pod(&b, "http://127.0.0.1:9001", "b"); /* same address */
    CHECK_EQ(ctl_add_pod(C, &b, err, sizeof(err), NULL, NULL, 0), -EEXIST);
    CHECK_STR(err, "pod \"a\" has the same address");
    pod(&b, "http://[::1]:9002", "b");
    CHECK_EQ(ctl_add_pod(C, &b, err, sizeof(err), NULL, NULL, 0), 0);
    CHECK_EQ(C->npods, 2);
    CHECK(by_name("b") && by_name("b")->info.addr.ss_family == AF_INET6);
    CHECK_STR(by_name("b")->mc.host, "[::1]:9002"); /* the probes' Host header */
    CHECK_EQ(ctl_drain_pod(C, "a", 1), 0);
    CHECK_EQ(by_name("a")->info.draining, 1);
    CHECK_EQ(ctl_drain_pod(C, "nope", 1), -ENOENT);
    /* published: both pods, a draining */
    ctl_publish_now(C);
    struct pod_snapshot *s = snapshot_get();
    CHECK_EQ(s->npods, 2);
    CHECK_STR(s->pods[0].name, "a");
    CHECK_EQ(s->pods[0].draining, 1);
    snapshot_put(s);
    CHECK_EQ(ctl_remove_pod(C, "a"), 0);
    CHECK_EQ(ctl_remove_pod(C, "a"), -ENOENT);
    CHECK_EQ(ctl_remove_pod(C, "b"), 0);
    CHECK_EQ(C->npods, 0);
}

/* issue 10: a removed pod's session pins go with it (session_forget_slot
 * had no caller: a later pod in the slot inherited the sessions). */
TEST(remove_forgets_session_pins)
{
    struct gw_pod_cfg p, q;
    pod(&p, "http://127.0.0.1:9003", "p");
    pod(&q, "http://127.0.0.1:9004", "q");
    CHECK_EQ(ctl_add_pod(C, &p, err, sizeof(err), NULL, NULL, 0), 0);
    CHECK_EQ(ctl_add_pod(C, &q, err, sizeof(err), NULL, NULL, 0), 0);
    uint32_t sp = by_name("p")->info.slot, sq = by_name("q")->info.slot;
    uint64_t h1 = session_hash("s1", 2), h2 = session_hash("s2", 2);
    session_put(g.sessions, h1, sp);
    session_put(g.sessions, h2, sq);
    CHECK_EQ(session_get(g.sessions, h1), (int)sp);
    CHECK_EQ(ctl_remove_pod(C, "p"), 0);
    CHECK_EQ(session_get(g.sessions, h1), -1);
    CHECK_EQ(session_get(g.sessions, h2), (int)sq); /* the other pod's stay */
    CHECK_EQ(ctl_remove_pod(C, "q"), 0);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

TEST(reload)
{
    char path[] = "/tmp/kvgate-test-control-XXXXXX", restart[256];
    int fd = mkstemp(path);
    close(fd);
    g.config_path = path;
    struct gw_pod_cfg p;
    pod(&p, "http://127.0.0.1:9010", "keep");
    CHECK_EQ(ctl_add_pod(C, &p, err, sizeof(err), NULL, NULL, 0), 0);
    pod(&p, "http://127.0.0.1:9011", "drop");
    CHECK_EQ(ctl_add_pod(C, &p, err, sizeof(err), NULL, NULL, 0), 0);
    CHECK_EQ(rollout_start(g.rollout, 1), 0);
    ctl_killswitch(C, 1);
    struct rollout_status rs;
    rollout_status(g.rollout, 2, &rs);
    CHECK_EQ(rs.state, RO_ABORTED); /* the kill switch aborts a rollout */
    CHECK_EQ(rollout_share(g.rollout), 0);
    write_file(path, "{\"pods\":[{\"url\":\"http://127.0.0.1:9010\",\"name\":\"keep\","
                     "\"models\":[\"m\"]},{\"url\":\"http://127.0.0.1:9012\",\"name\":\"new\"}],"
                     "\"rollout\":{\"steps\":[10,100]},"
                     "\"policy\":{\"mode\":\"least-request\"},\"scrape\":{\"interval_ms\":7},"
                     "\"splice\":{\"mode\":\"off\"},\"limits\":{\"send_timeout_ms\":1234}}");
    CHECK_EQ(ctl_reload(C, err, sizeof(err), restart, sizeof(restart)), 0);
    CHECK(by_name("keep") && by_name("new") && !by_name("drop"));
    CHECK_EQ(by_name("keep")->info.nmodels, 1);
    CHECK_STR(by_name("keep")->info.models[0], "m");
    CHECK_EQ(C->cfg.scrape_ms, 7);
    CHECK_STR(restart, "limits.send_timeout_ms, splice.mode");
    /* the kill switch stays on; the new policy comes back when it goes off */
    CHECK_EQ(g.policies.global.mode, POLICY_ROUND_ROBIN);
    CHECK_EQ(g.policies.global.baseline, POLICY_ROUND_ROBIN); /* both arms */
    /* the reloaded rollout steps apply to the next rollout */
    CHECK_EQ(rollout_start(g.rollout, 3), 0);
    CHECK_EQ(rollout_share(g.rollout), 10);
    rollout_abort(g.rollout, 4);
    ctl_killswitch(C, 0);
    CHECK_EQ(g.policies.global.mode, POLICY_LEAST_REQUEST);
    /* a config that does not parse changes nothing */
    write_file(path, "{\"pods\":5}");
    CHECK_EQ(ctl_reload(C, err, sizeof(err), restart, sizeof(restart)), -1);
    CHECK(strstr(err, "pods: expected an array") != NULL);
    CHECK(by_name("keep") && by_name("new"));
    unlink(path);
    g.config_path = NULL;
    CHECK_EQ(ctl_reload(C, err, sizeof(err), NULL, 0), -1);
    CHECK_STR(err, "kvgated was started without a config file (--config)");
    ctl_pods_free(C);
}

/* accounting.enabled off: a guarded rollout would get no samples (route.c
 * records none), so "start" is refused rather than left waiting forever;
 * the other actions are unaffected. */
TEST(rollout_start_needs_accounting)
{
    ctl_rollout_action(C, "reset");
    g.cfg.accounting = 0;
    CHECK_EQ(ctl_rollout_action(C, "start"), -EOPNOTSUPP);
    struct rollout_status rs;
    rollout_status(g.rollout, 1, &rs);
    CHECK_EQ(rs.state, RO_IDLE);
    CHECK_EQ(ctl_rollout_action(C, "sideways"), -ENOENT);
    g.cfg.accounting = 1;
    CHECK_EQ(ctl_rollout_action(C, "start"), 0);
    CHECK_EQ(ctl_rollout_action(C, "abort"), 0);
}

int main(void)
{
    gw_config_defaults(&g.cfg);
    pthread_mutex_init(&g.policy_mu, NULL);
    g.policies = g.cfg.policies;
    g.sessions = session_new(1024);
    g.pidx = pidx_new(POD_MAX, 4096, 64);
    g.rollout = rollout_new(&g.cfg.rollout); /* as main.c: the kill switch aborts it */
    C = new_ctl();
    RUN(add_remove_drain);
    RUN(remove_forgets_session_pins);
    RUN(reload);
    RUN(rollout_start_needs_accounting);
    free(C);
    session_free(g.sessions);
    pidx_free(g.pidx);
    rollout_free(g.rollout);
    snapshot_publish(NULL);
    return harness_done();
}
