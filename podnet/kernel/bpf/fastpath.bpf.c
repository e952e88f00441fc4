// SPDX-License-Identifier: GPL-2.0
/* podnet fast path: established IPv4 TCP flows skip netfilter's forward path.
 *
 * Attached at tc ingress of a node's pod-side veths and its underlay/VXLAN devices. A packet
 * leaves here early only when conntrack already knows its flow as confirmed, assured and
 * established, without NAT and without the policy's "denied" mark; everything else
 * (new connections, SYN/FIN/RST, NATed or marked flows, other protocols, a source address that
 * does not live behind the incoming device) takes the slow path, so every nftables rule still
 * sees every new connection, a tightened policy still cuts, and anti-spoofing still holds.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define TC_ACT_OK 0
#define ETH_P_IP 0x0800
#define AF_INET 2
#define ETH_HLEN 14
#define IP_CSUM_OFF (ETH_HLEN + 10)
#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04
/* Refresh the entry as the slow path would (the default established timeout: 5 days). */
#define CT_ESTABLISHED_TIMEOUT_MS (432000U * 1000U)

struct nf_conn *bpf_skb_ct_lookup(struct __sk_buff *skb, struct bpf_sock_tuple *tuple,
				  u32 tuple_sz, struct bpf_ct_opts *opts, u32 opts_sz) __ksym;
void bpf_ct_release(struct nf_conn *ct) __ksym;
int bpf_ct_change_timeout(struct nf_conn *ct, u32 timeout) __ksym;

enum { STAT_FAST = 0, STAT_SLOW_TCP = 1, STAT_MAX = 2 };

/* Packets the fast path forwarded, and TCP packets it left to the slow path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, u32);
	__type(value, u64);
} fp_stats SEC(".maps");

/* Veths (of this node) whose peer a packet may be handed to directly. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, u32);
	__type(value, u8);
} fp_peer_ifs SEC(".maps");

static __always_inline void count(u32 which)
{
	u64 *v = bpf_map_lookup_elem(&fp_stats, &which);

	if (v)
		*v += 1;
}

static __always_inline int flow_is_fast(struct nf_conn *ct)
{
	unsigned long status = ct->status;

	if (!(status & IPS_CONFIRMED) || !(status & IPS_ASSURED) || !(status & IPS_SEEN_REPLY))
		return 0;
	if (status & IPS_NAT_MASK)
		return 0;
	if (ct->mark != 0)
		return 0;
	return ct->proto.tcp.state == TCP_CONNTRACK_ESTABLISHED;
}

SEC("tc")
int podnet_fastpath(struct __sk_buff *skb)
{
	void *data, *data_end;
	struct ethhdr *eth;
	struct iphdr *iph;
	struct tcphdr *tcp;
	struct bpf_sock_tuple tuple = {};
	struct bpf_ct_opts opts = {};
	struct bpf_fib_lookup fib = {}, back = {};
	struct nf_conn *ct;
	u32 ihl, flags_off;
	u8 flags;
	int fast, rc;

	if (skb->protocol != bpf_htons(ETH_P_IP))
		return TC_ACT_OK;
	if (bpf_skb_pull_data(skb, ETH_HLEN + sizeof(struct iphdr) + sizeof(struct tcphdr)) < 0)
		return TC_ACT_OK;
	data = (void *)(long)skb->data;
	data_end = (void *)(long)skb->data_end;
	eth = data;
	iph = data + ETH_HLEN;
	if ((void *)(iph + 1) > data_end)
		return TC_ACT_OK;
	if (iph->protocol != IPPROTO_TCP || iph->ihl != 5 || iph->ttl <= 1)
		return TC_ACT_OK;
	if (iph->frag_off & bpf_htons(0x3fff))
		return TC_ACT_OK;
	tcp = (void *)(iph + 1);
	if ((void *)(tcp + 1) > data_end)
		return TC_ACT_OK;
	flags = ((u8 *)tcp)[13];
	if (flags & (TCP_FLAG_SYN | TCP_FLAG_FIN | TCP_FLAG_RST)) {
		count(STAT_SLOW_TCP);
		return TC_ACT_OK;
	}

	tuple.ipv4.saddr = iph->saddr;
	tuple.ipv4.daddr = iph->daddr;
	tuple.ipv4.sport = tcp->source;
	tuple.ipv4.dport = tcp->dest;
	opts.netns_id = BPF_F_CURRENT_NETNS;
	opts.l4proto = IPPROTO_TCP;
	ct = bpf_skb_ct_lookup(skb, &tuple, sizeof(tuple.ipv4), &opts, sizeof(opts));
	if (!ct) {
		count(STAT_SLOW_TCP);
		return TC_ACT_OK;
	}
	fast = flow_is_fast(ct);
	if (fast)
		bpf_ct_change_timeout(ct, CT_ESTABLISHED_TIMEOUT_MS);
	bpf_ct_release(ct);
	if (!fast) {
		count(STAT_SLOW_TCP);
		return TC_ACT_OK;
	}

	/* The source must live behind the device the packet came in on, as strict rp_filter asks
	 * (it runs later, in the IP stack, which a redirect skips): conntrack finds a flow by its
	 * addresses and ports alone, so a pod sending with another pod's address and ports would
	 * otherwise ride that pod's flow past the anti-spoofing rules. */
	back.family = AF_INET;
	back.l4_protocol = IPPROTO_TCP;
	back.tot_len = bpf_ntohs(iph->tot_len);
	back.ipv4_src = iph->daddr;
	back.ipv4_dst = iph->saddr;
	back.ifindex = skb->ingress_ifindex;
	rc = bpf_fib_lookup(skb, &back, sizeof(back), BPF_FIB_LOOKUP_SKIP_NEIGH);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS || back.ifindex != skb->ingress_ifindex) {
		count(STAT_SLOW_TCP);
		return TC_ACT_OK;
	}

	fib.family = AF_INET;
	fib.tos = iph->tos;
	fib.l4_protocol = IPPROTO_TCP;
	fib.tot_len = bpf_ntohs(iph->tot_len);
	fib.ipv4_src = iph->saddr;
	fib.ipv4_dst = iph->daddr;
	fib.ifindex = skb->ingress_ifindex;
	rc = bpf_fib_lookup(skb, &fib, sizeof(fib), 0);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS) {
		count(STAT_SLOW_TCP);
		return TC_ACT_OK;
	}

	/* Forward as the kernel would: TTL down by one (checksum adjusted), new MACs. */
	{
		u16 old = *(u16 *)&iph->ttl;
		u16 new;

		iph->ttl -= 1;
		new = *(u16 *)&iph->ttl;
		bpf_l3_csum_replace(skb, IP_CSUM_OFF, old, new, sizeof(u16));
	}
	bpf_skb_store_bytes(skb, 0, fib.dmac, 6, 0);
	bpf_skb_store_bytes(skb, 6, fib.smac, 6, 0);
	count(STAT_FAST);
	if (bpf_map_lookup_elem(&fp_peer_ifs, &fib.ifindex))
		return bpf_redirect_peer(fib.ifindex, 0);
	return bpf_redirect(fib.ifindex, 0);
}

char LICENSE[] SEC("license") = "GPL";
