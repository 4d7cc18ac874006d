import java.io.IOException;
import java.io.Writer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;

import org.apache.flink.api.common.RuntimeExecutionMode;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.sink2.Sink;
import org.apache.flink.api.connector.sink2.SinkWriter;
import org.apache.flink.api.connector.sink2.WriterInitContext;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.RestartStrategyOptions;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;

/**
 * Bounded test job: sums the numbers 1..1000 and finishes.
 *
 * <p>Usage: {@code BatchJob [fail] [output-file]}.
 *
 * <ul>
 *   <li>With an output file, the task writes the line {@code sum=500500} to it
 *       (written to a temporary name, then renamed, so the file appears
 *       complete). The result is also printed to the task manager's stdout.
 *   <li>With {@code fail} as the first argument, a task throws at record 500,
 *       so the job ends FAILED on the cluster (not in the client) and no file
 *       is written.
 * </ul>
 */
public class BatchJob {

    public static void main(String[] args) throws Exception {
        boolean fail = args.length > 0 && args[0].equals("fail");
        int outputIndex = fail ? 1 : 0;
        String output = args.length > outputIndex ? args[outputIndex] : null;

        // No restarts, so a failing run turns FAILED at once whatever the
        // cluster's default restart strategy is.
        Configuration conf = new Configuration();
        conf.set(RestartStrategyOptions.RESTART_STRATEGY, "none");
        StreamExecutionEnvironment env =
                StreamExecutionEnvironment.getExecutionEnvironment(conf);
        env.setRuntimeMode(RuntimeExecutionMode.BATCH);

        DataStream<String> result =
                env.fromSequence(1, 1000)
                        .map(new MaybeFail(fail))
                        .name(fail ? "fail-at-500" : "pass")
                        .keyBy(value -> 0)
                        .reduce(Long::sum)
                        .map(sum -> "sum=" + sum)
                        .returns(Types.STRING);

        result.print();
        if (output != null) {
            // One writer, because every writer would replace the same file.
            result.sinkTo(new SingleFileSink(output))
                    .name("write " + output)
                    .setParallelism(1);
        }

        env.execute(fail ? "batch-job-fail" : "batch-job");
    }

    /** Passes numbers through, or throws at 500 when asked to fail. */
    private static final class MaybeFail implements MapFunction<Long, Long> {
        private static final long serialVersionUID = 1L;

        private final boolean fail;

        MaybeFail(boolean fail) {
            this.fail = fail;
        }

        @Override
        public Long map(Long value) {
            if (fail && value == 500) {
                throw new IllegalStateException("BatchJob asked to fail");
            }
            return value;
        }
    }

    /** Writes every record as a line of one file, published by a rename. */
    private static final class SingleFileSink implements Sink<String> {
        private static final long serialVersionUID = 1L;

        private final String path;

        SingleFileSink(String path) {
            this.path = path;
        }

        @Override
        public SinkWriter<String> createWriter(WriterInitContext context)
                throws IOException {
            return new FileWriter(Paths.get(path));
        }
    }

    /** Writer of {@link SingleFileSink}. */
    private static final class FileWriter implements SinkWriter<String> {
        private final Path target;
        private final Path partial;
        private final Writer out;
        private boolean published;

        FileWriter(Path target) throws IOException {
            this.target = target;
            this.partial = target.resolveSibling(target.getFileName() + ".partial");
            this.out = Files.newBufferedWriter(partial, StandardCharsets.UTF_8);
        }

        @Override
        public void write(String element, Context context) throws IOException {
            out.write(element);
            out.write('\n');
        }

        @Override
        public void flush(boolean endOfInput) throws IOException {
            if (published) {
                return;
            }
            out.flush();

            // Only a complete input gets published; close() runs on failure
            // and cancellation too.
            if (endOfInput) {
                out.close();
                Files.move(partial, target, StandardCopyOption.REPLACE_EXISTING);
                published = true;
            }
        }

        @Override
        public void close() throws IOException {
            out.close();
            Files.deleteIfExists(partial);
        }
    }
}
