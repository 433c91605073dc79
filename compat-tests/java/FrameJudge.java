/*
 * FrameJudge.java - Kafka's own parsers judge the answers a broker sent.
 *
 *     java -cp build/compat-java:build/kafka-lib/* FrameJudge PAIRS
 *
 * PAIRS is what compat-tests/frames.py extracts from a loopback capture:
 * records of (api key, api version, request bytes, response bytes), the
 * request cut after its first bytes (only its header is needed), the
 * response whole, both without their 4-byte size. Each response is parsed
 * with kafka-clients' AbstractResponse.parseResponse, the code every Java
 * client runs on what a broker answers, for the request header it answers:
 * a response it cannot read, whose correlation id is not the request's, or
 * that leaves bytes unread, is malformed. This judges every API at every
 * version Kafka 4.4 knows, where tshark's dissector knows only older ones.
 *
 * Prints one JSON object per line: {"key":K,"version":V,"judged":N,
 * "malformed":M,"first":"..."} per API version seen, then a summary line.
 * Exits 0 whatever it found; the caller decides.
 */

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.FileInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.Map;
import java.util.TreeMap;

import org.apache.kafka.common.protocol.ApiKeys;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.requests.AbstractResponse;
import org.apache.kafka.common.requests.ApiVersionsResponse;
import org.apache.kafka.common.requests.RequestHeader;

public final class FrameJudge {
    private static final int RECORD_BYTES_MAX = 256 << 20;

    private static final class Tally {
        long judged;
        long malformed;
        String first = "";
    }

    public static void main(String[] args) throws IOException {
        Map<Long, Tally> tallies = new TreeMap<>();
        long unreadableHeaders = 0, unknownApis = 0;
        try (DataInputStream in = new DataInputStream(new BufferedInputStream(new FileInputStream(args[0]), 1 << 20))) {
            while (true) {
                int key, version;
                byte[] request, response;
                try {
                    key = in.readShort();
                    version = in.readShort();
                    request = readBytes(in);
                    response = readBytes(in);
                } catch (EOFException e) {
                    break;
                }
                if (!ApiKeys.hasId(key)) {
                    unknownApis++;
                    continue;
                }
                RequestHeader header;
                try {
                    header = RequestHeader.parse(ByteBuffer.wrap(request));
                } catch (RuntimeException e) {
                    unreadableHeaders++;       /* a hostile client's bytes: nothing to judge the answer by */
                    continue;
                }
                Tally t = tallies.computeIfAbsent(((long) key << 16) | (version & 0xffff), k -> new Tally());
                t.judged++;
                String problem = judge(header, response);
                if (problem != null) {
                    if (t.malformed == 0)
                        t.first = problem;
                    t.malformed++;
                }
            }
        }
        long judged = 0, malformed = 0;
        for (Map.Entry<Long, Tally> e : tallies.entrySet()) {
            Tally t = e.getValue();
            judged += t.judged;
            malformed += t.malformed;
            System.out.printf("{\"key\":%d,\"version\":%d,\"judged\":%d,\"malformed\":%d,\"first\":\"%s\"}%n",
                              e.getKey() >> 16, e.getKey() & 0xffff, t.judged, t.malformed, json(t.first));
        }
        System.out.printf("{\"summary\":true,\"judged\":%d,\"malformed\":%d,\"unreadable_request_headers\":%d,"
                          + "\"unknown_api_keys\":%d}%n", judged, malformed, unreadableHeaders, unknownApis);
    }

    /* null when Kafka's parser reads the whole answer; else what is wrong. */
    private static String judge(RequestHeader header, byte[] response) {
        String problem = parseWhole(header, response);
        /* KIP-511: an ApiVersions request of a version the broker does not
         * know is answered at version 0 with UNSUPPORTED_VERSION, and
         * clients read it so when it does not read at the version asked. */
        if (problem != null && header.apiKey() == ApiKeys.API_VERSIONS && header.apiVersion() > 0) {
            RequestHeader v0 = new RequestHeader(ApiKeys.API_VERSIONS, (short) 0, header.clientId(),
                                                 header.correlationId());
            ByteBuffer again = ByteBuffer.wrap(response);
            try {
                ApiVersionsResponse r = (ApiVersionsResponse) AbstractResponse.parseResponse(again, v0);
                if (r.data().errorCode() == Errors.UNSUPPORTED_VERSION.code() && !again.hasRemaining())
                    return null;
                problem += "; read as version 0: error " + r.data().errorCode() + ", "
                           + again.remaining() + " bytes left unread";
            } catch (RuntimeException e) {
                problem += "; read as version 0: " + e.getClass().getSimpleName() + ": " + e.getMessage();
            }
        }
        return problem;
    }

    private static String parseWhole(RequestHeader header, byte[] response) {
        ByteBuffer buf = ByteBuffer.wrap(response);
        try {
            AbstractResponse.parseResponse(buf, header);
            return buf.hasRemaining() ? buf.remaining() + " bytes left unread after the response" : null;
        } catch (RuntimeException e) {
            return e.getClass().getSimpleName() + ": " + e.getMessage();
        }
    }

    private static byte[] readBytes(DataInputStream in) throws IOException {
        int n = in.readInt();
        if (n < 0 || n > RECORD_BYTES_MAX)
            throw new IOException("record of " + n + " bytes in the pairs file");
        byte[] b = new byte[n];
        in.readFully(b);
        return b;
    }

    private static String json(String s) {
        StringBuilder b = new StringBuilder();
        for (char c : s.toCharArray()) {
            if (c == '"' || c == '\\')
                b.append('\\').append(c);
            else if (c < 0x20)
                b.append(String.format("\\u%04x", (int) c));
            else
                b.append(c);
        }
        return b.length() > 300 ? b.substring(0, 300) : b.toString();
    }
}
